"""Evaluators: what observes a candidate's accuracy for the search loop.

The loop (:mod:`nas.search.loop`) and the objective (:mod:`nas.search.objective`) do not know
how a candidate is evaluated; they ask an :class:`Evaluator`, which

* measures a metric of a candidate before any training (:meth:`Evaluator.measure`: the
  budget check's measurements; the registry's own function unless the evaluator knows
  better, e.g. a table that holds every candidate's size), and
* observes a candidate that fits (:meth:`Evaluator.evaluate`): trains it as a proxy
  (:class:`ProxyEvaluator`, what ``nas search`` runs), looks it up in a table (the tabular
  benchmark), or measures it.

An evaluator stops a hopeless candidate by raising :class:`optuna.TrialPruned` after
recording why, and fails one by raising :class:`nas.training.TrainingFailed`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import optuna

from nas.budget import measure_metric
from nas.errors import StorageError
from nas.search.early_stop import WITH_CURVES, SuccessiveHalving, curve_points
from nas.search.events import SearchMonitor
from nas.study.record import TrialWriter
from nas.units import plural

#: Test hook: ``NAS_INJECT_FAULT="nan@2,oom@4"`` makes trials 2 and 4 fail that way.
FAULT_ENV = "NAS_INJECT_FAULT"


def failure_reason(exc: BaseException) -> str:
    """``TypeName: the first line of the message`` (at most 200 characters)."""
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def injected_fault(trial_number: int) -> str | None:
    """The fault :data:`FAULT_ENV` asks for in ``trial_number``, if any."""
    for item in os.environ.get(FAULT_ENV, "").split(","):
        kind, _, number = item.strip().partition("@")
        if kind in ("nan", "oom") and number.strip().isdigit() and int(number) == trial_number:
            return kind
    return None


@dataclass(frozen=True)
class TrialRun:
    """What an evaluator gets to know about the trial it evaluates.

    Attributes:
        trial: the running trial (its study, for decisions against other trials).
        writer: where the trial's attributes are written.
        monitor: progress events for the display.
        started: ``time.perf_counter()`` when the trial began.
        costs: the study's objectives other than accuracy.
        values: the candidate's metrics measured before training, by name.
    """

    trial: optuna.trial.Trial
    writer: TrialWriter
    monitor: SearchMonitor
    started: float
    costs: tuple[str, ...]
    values: Mapping[str, float]

    @property
    def number(self) -> int:
        return self.trial.number

    def cost(self) -> tuple[float, ...]:
        """The candidate's values of the study's costs (what early stopping compares)."""
        return tuple(float(self.values[c]) for c in self.costs)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


class Evaluator(Protocol):
    """Measures candidates before training and observes their accuracy (see the module doc)."""

    def measure(self, candidate: Any, metric: str) -> float:
        """``metric`` of ``candidate``, before any training."""
        ...

    def knows(self, metric: str) -> bool:
        """Whether :meth:`measure` can measure ``metric`` for this evaluator's candidates."""
        ...

    def evaluate(self, candidate: Any, label: str, run: TrialRun) -> float:
        """The candidate's validation accuracy (raises ``optuna.TrialPruned`` when stopped
        early, :class:`nas.training.TrainingFailed` when it failed, both recorded)."""
        ...

    def describe(self) -> str:
        """What it evaluates on, for the run's first line (``45,000 training / 5,000
        validation images on cuda``)."""
        ...


class ProxyEvaluator:
    """Trains each candidate as a short proxy and scores it on the validation split: what
    ``nas search`` evaluates with.

    Args:
        ctx: data, split, recipe and device every trial shares
            (:class:`nas.proxy.context.TrainingContext`).
        seed: the study's seed (with the trial number, each candidate's initial weights).
        stopper: the early stopper (None: never stop early).
    """

    def __init__(self, ctx: Any, seed: int, stopper: SuccessiveHalving | None) -> None:
        self.ctx = ctx
        self.seed = seed
        self.stopper = stopper

    @classmethod
    def of(cls, opened: Any, device: Any) -> ProxyEvaluator:
        """What ``nas search`` evaluates an opened study (:class:`nas.search.study.SearchStudy`)
        with on ``device``: its proxy protocol (image counts, epochs, learning rate) on its
        data, and the early stopper its settings ask for."""
        from nas.proxy.context import proxy_context

        s = opened.settings
        costs = s.objectives[1:]
        stopper = stopper_of(s.early_stopping, s.eta, s.min_epochs, s.min_members, costs)
        return cls(proxy_context(s.proxy, opened.data, device, s.seed), s.seed, stopper)

    def describe(self) -> str:
        split = self.ctx.split
        return (
            f"{len(split.train):,} training / {plural(len(split.val), 'validation image')} on "
            f"{self.ctx.device}"
        )

    def measure(self, candidate: Any, metric: str) -> float:
        return measure_metric(candidate, metric)

    def knows(self, metric: str) -> bool:
        from nas.objectives import METRICS

        return METRICS[metric].before_training

    def evaluate(self, candidate: Any, label: str, run: TrialRun) -> float:
        """Build the proxy's trainer, score the untrained network, train, turning a stop into
        PRUNED and a failure into a failed trial with its reason; returns the final
        validation accuracy. The trainer lives in this frame only, so a failure frees it
        before the next candidate starts."""
        from nas.proxy.context import candidate_zero_cost, init_seed, make_trainer
        from nas.training import TrainingFailed

        run.monitor.trial_started(run.number, label, run.values, self.ctx.recipe.epochs)
        trainer = make_trainer(
            self.ctx, candidate, init_seed(self.seed, run.number), fault=injected_fault(run.number)
        )
        values = run.values
        run.writer.zero_cost(
            candidate_zero_cost(
                self.ctx, trainer.model, params=int(values["params"]), flops=_int(values, "flops")
            )
        )
        run.writer.training(str(self.ctx.device))
        try:
            result = self._fit(trainer, run)
        except TrainingFailed as exc:
            failure = TrainingFailed(str(exc))
        else:
            run.monitor.trial_finished(run.number, "complete", f"accuracy {result.accuracy:.4f}")
            return float(result.accuracy)
        # Out of the except block, so nothing holds the failed run's traceback: drop the
        # model, optimizer and batches before the next candidate needs the memory.
        from nas.training.trainer import release_memory

        del trainer
        release_memory(self.ctx.device)
        raise failure

    def _fit(self, trainer: Any, run: TrialRun) -> Any:
        """Train, recording every epoch; what ends a trial early is recorded and re-raised."""
        from nas.training import StopTraining, TrainingFailed

        watch = EpochWatch(self.stopper, run)
        try:
            result = trainer.fit(watch, lambda p: run.monitor.step_progress(run.number, p))
        except StopTraining as stop:
            run.writer.finished(run.elapsed())
            run.monitor.trial_finished(
                run.number, f"stopped at epoch {watch.stopped_at}", stop.reason
            )
            raise optuna.TrialPruned(stop.reason) from None
        except TrainingFailed as exc:
            self._failed(run, str(exc))
            raise
        except StorageError:  # the database is gone: nothing can be recorded, stop here
            raise
        except Exception as exc:  # a bug or an unforeseen error: fail this trial, say why
            self._failed(run, failure_reason(exc))
            raise
        run.writer.finished(run.elapsed(), result.images_per_s)
        if not math.isfinite(result.accuracy):  # pragma: no cover - guarded by the trainer
            raise TrainingFailed("validation accuracy is not finite")
        return result

    @staticmethod
    def _failed(run: TrialRun, reason: str) -> None:
        run.writer.failed(reason)
        run.writer.finished(run.elapsed())
        run.monitor.trial_finished(run.number, "failed", reason)


def _int(values: Mapping[str, float], key: str) -> int | None:
    value = values.get(key)
    return None if value is None else int(value)


class EpochWatch:
    """After every epoch of a proxy: record its curve, report, and at a rung ask the early
    stopper (the study is read only at a rung, not after every epoch)."""

    def __init__(self, stopper: SuccessiveHalving | None, run: TrialRun) -> None:
        self.stopper = stopper
        self.run = run
        self.curve: list[float] = []
        self.passed: list[int] = []  # rungs this trial passed
        self.stopped_at: int | None = None

    def __call__(self, e: Any) -> None:
        from nas.training import StopTraining

        run, stopper = self.run, self.stopper
        self.curve.append(e.accuracy)
        run.writer.epoch(self.curve)
        if not run.costs:
            run.trial.report(e.accuracy, e.epoch)
        run.monitor.epoch_done(run.number, e)
        if stopper is None or e.epoch not in stopper.rungs(e.epochs):
            return
        others = curve_points(
            run.trial.study.get_trials(deepcopy=False, states=WITH_CURVES),
            run.costs,
            exclude=run.number,
        )
        decision = stopper.decide(others, run.cost(), e.epoch, e.epochs, e.accuracy)
        if decision is None:
            return
        if decision.stop:
            run.writer.rung([*self.passed, decision.rung])
            run.writer.stopped(decision.reason, decision.rung)
            self.stopped_at = decision.rung
            raise StopTraining(decision.reason)
        self.passed.append(decision.rung)
        run.writer.rung(self.passed, decision.reason)


def stopper_of(
    early_stopping: str, eta: float, min_epochs: int, min_members: int, costs: Sequence[str]
) -> SuccessiveHalving | None:
    """The early stopper a search's settings ask for (None: ``off``); its costs are the
    study's objectives other than accuracy."""
    from nas.objectives import METRICS

    if early_stopping == "off":
        return None
    return SuccessiveHalving(
        eta=eta,
        min_epochs=min_epochs,
        cost_names=tuple(METRICS[c].label for c in costs),
        min_members=min_members,
    )
