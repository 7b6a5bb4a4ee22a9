"""The objective: sample, check the budget, reject or train a proxy, report. Nothing else.

What each trial records (keys in :mod:`nas.study.record`): ``arch`` (the config dict
:func:`nas.build_model` takes), ``params`` and ``flops``, ``sampled_by`` (startup, guided,
enqueued or retry); rejected trials add ``rejected`` (the reason) and end PRUNED with a
positive constraint value, so TPE and NSGA-II learn where the limit lies; trained trials
add ``curve`` (validation accuracy per epoch), ``accuracy``, ``seconds``, ``device`` and
``images_per_s``, and ``rungs`` (the early-stopping rungs it reached; ``promoted``: why it
went on); early-stopped ones add ``stopped_early`` (why) and ``stopped_at_epoch`` and end
PRUNED; failed ones add ``fail_reason`` and end FAIL.

Whether a candidate that fits may be trained at all is the :class:`TrainingGate`'s
decision (the loop hands it one: the study's training slots), asked once per trial.
"""

from __future__ import annotations

import math
import os
import time
from typing import NoReturn, Protocol

import optuna
from optuna.trial import TrialState

from nas.budget import Budget
from nas.config import ArchConfig
from nas.errors import ConfigError, StorageError
from nas.proxy.context import TrainingContext, candidate_zero_cost, init_seed, make_trainer
from nas.search.early_stop import WITH_CURVES, SuccessiveHalving, curve_points
from nas.search.events import SearchMonitor
from nas.search.settings import TPE_STARTUP, SearchSettings
from nas.space import SearchSpace
from nas.study import _optuna
from nas.study import record as rec
from nas.study.cleanup import INTERRUPTED
from nas.study.storage import worker_id
from nas.training import EpochResult, StopTraining, TrainingFailed
from nas.training.trainer import release_memory

#: Test hook: ``NAS_INJECT_FAULT="nan@2,oom@4"`` makes trials 2 and 4 fail that way.
FAULT_ENV = "NAS_INJECT_FAULT"


def injected_fault(trial_number: int) -> str | None:
    """The fault :data:`FAULT_ENV` asks for in ``trial_number``, if any."""
    for item in os.environ.get(FAULT_ENV, "").split(","):
        kind, _, number = item.strip().partition("@")
        if kind in ("nan", "oom") and number.strip().isdigit() and int(number) == trial_number:
            return kind
    return None


class TrainingGate(Protocol):
    """Decides whether a candidate that fits the limits may be trained (one method, in the
    spirit of Optuna's ``BasePruner.prune``)."""

    def admit(self, trial_number: int) -> bool:
        """True: train trial ``trial_number`` now; False: the study has enough trained
        trials (the trial ends PRUNED with ``not_trained``)."""
        ...


class OpenGate:
    """Admits every candidate (an objective used outside the search loop)."""

    def admit(self, trial_number: int) -> bool:
        return True


def sampled_by(trial: optuna.trial.Trial, finished_before: int) -> str:
    """How ``trial``'s candidate was chosen (call after sampling): ``enqueued`` (a preset),
    ``retry`` (a dead worker's trial), ``startup`` (drawn at random: TPE's first
    :data:`TPE_STARTUP` finished trials, NSGA-II's first generation, the random sampler) or
    ``guided``."""
    system = trial.storage.get_trial_system_attrs(_optuna.trial_id(trial))
    if system.get("failed_trial") is not None:
        return "retry"
    if "fixed_params" in system:
        return "enqueued"
    sampler = trial.study.sampler
    if isinstance(sampler, optuna.samplers.RandomSampler):
        return "startup"
    generation = next((v for k, v in system.items() if k.endswith(":generation")), None)
    if generation is not None:
        return "startup" if generation == 0 else "guided"
    return "startup" if finished_before < TPE_STARTUP else "guided"


class Objective:
    """Callable objective for ``study.optimize``.

    Args:
        settings: the search settings.
        space: the search space.
        ctx: data, split and device.
        monitor: receives progress events for the display.
        stopper: the early stopper (None: never stop early).
    """

    def __init__(
        self,
        settings: SearchSettings,
        space: SearchSpace,
        ctx: TrainingContext,
        monitor: SearchMonitor,
        stopper: SuccessiveHalving | None,
        gate: TrainingGate | None = None,
    ) -> None:
        self.settings = settings
        self.space = space
        self.ctx = ctx
        self.monitor = monitor
        self.stopper = stopper
        self.gate: TrainingGate = gate or OpenGate()
        self.budget = Budget(settings.param_limit, settings.flops_limit)
        self.started: set[int] = set()
        self.worker = worker_id()

    def __call__(self, trial: optuna.trial.Trial) -> float | tuple[float, float]:
        started = time.perf_counter()
        self.started.add(trial.number)
        trial.set_user_attr(rec.WORKER, self.worker)
        finished = len(
            trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        )
        data = self.ctx.data
        try:
            arch = self.space.suggest(
                trial,
                in_channels=data.in_channels,
                input_size=data.input_size,
                num_classes=data.num_classes,
            )
        except ConfigError as exc:
            self.constrain(trial, "params", 1.0)
            self._reject(trial, f"cannot build: {exc}", started)
        how = sampled_by(trial, finished)
        trial.set_user_attr(rec.SAMPLED_BY, how)
        if how == "retry":
            system = trial.storage.get_trial_system_attrs(_optuna.trial_id(trial))
            trial.set_user_attr(rec.RETRY_OF, system["failed_trial"])
        trial.set_user_attr(rec.ARCH, arch.to_dict())
        verdict = self.budget.check(arch)  # FLOPs only for what fits the parameter limit
        trial.set_user_attr(rec.PARAMS, verdict.params)
        if verdict.flops is not None:
            trial.set_user_attr(rec.FLOPS, verdict.flops)
        for key, violation in verdict.violations.items():
            self.constrain(trial, key, violation)
        if verdict.reason is not None:
            self._reject(trial, verdict.reason, started)
        if not self.gate.admit(trial.number):
            trial.set_user_attr(rec.NOT_TRAINED, "the study already has enough trained trials")
            raise optuna.TrialPruned("budget of trained trials reached")
        flops = verdict.flops if verdict.flops is not None else self._count_flops(trial, arch)
        trial.set_user_attr(rec.TRAINING, True)
        return self._train(trial, arch, verdict.params, flops, started)

    def _count_flops(self, trial: optuna.trial.Trial, arch: ArchConfig) -> int:
        """Count ``arch``'s FLOPs (fvcore) and record them on ``trial``."""
        flops = self.budget.check(arch, flops=True).flops
        assert flops is not None
        trial.set_user_attr(rec.FLOPS, flops)
        return flops

    def constrain(self, trial: optuna.trial.Trial, key: str, violation: float) -> None:
        """Record how far over the limit ``key`` (``params``, ``flops``) ``trial`` is (> 0:
        infeasible), so that the sampler learns where the limit lies."""
        trial.set_constraint(key, violation)

    def _reject(self, trial: optuna.trial.Trial, reason: str, started: float) -> NoReturn:
        trial.set_user_attr(rec.REJECTED, reason)
        self.monitor.rejected(trial.number, reason, time.perf_counter() - started)
        raise optuna.TrialPruned(reason)

    def _cost(self, params: int, flops: int) -> tuple[str | None, float]:
        """The second objective's name and this candidate's value of it (None, 0: single
        objective): what early stopping compares and the trial's second value."""
        if len(self.settings.objectives) == 1:
            return None, 0.0
        key = self.settings.objectives[1]
        return key, float(params if key == "params" else flops)

    def _train(
        self, trial: optuna.trial.Trial, arch: ArchConfig, params: int, flops: int, started: float
    ) -> float | tuple[float, float]:
        self.monitor.trial_started(trial.number, arch, params, flops, self.ctx.recipe.epochs)
        cost_key, cost = self._cost(params, flops)
        watch = _EpochWatch(self, trial, cost_key, cost)
        accuracy = self._fit(trial, arch, params, flops, watch, started)
        self.monitor.trial_finished(trial.number, "complete", f"accuracy {accuracy:.4f}")
        return accuracy if cost_key is None else (accuracy, cost)

    def _fit(
        self,
        trial: optuna.trial.Trial,
        arch: ArchConfig,
        params: int,
        flops: int,
        watch: _EpochWatch,
        started: float,
    ) -> float:
        """Build the proxy's trainer, score the untrained network, train, turning a stop into
        PRUNED and a failure into a failed trial with its reason; returns the final
        validation accuracy. The trainer lives in this frame only, so a failure frees it
        before the next candidate starts."""
        ctx = self.ctx
        trainer = make_trainer(
            ctx,
            arch,
            init_seed(self.settings.seed, trial.number),
            fault=injected_fault(trial.number),
        )
        trial.set_user_attr(
            rec.ZERO_COST, candidate_zero_cost(ctx, trainer.model, params=params, flops=flops)
        )
        trial.set_user_attr(rec.CURVE, [])  # a retry starts afresh
        trial.set_user_attr(rec.RUNGS, [])
        trial.set_user_attr(rec.DEVICE, str(ctx.device))
        failure: TrainingFailed | None = None
        try:
            result = trainer.fit(watch, lambda p: self.monitor.step_progress(trial.number, p))
        except StopTraining as stop:
            trial.set_user_attr(rec.STOPPED_EARLY, stop.reason)
            trial.set_user_attr(rec.SECONDS, time.perf_counter() - started)
            rung = trial.user_attrs.get(rec.STOPPED_AT_EPOCH)
            self.monitor.trial_finished(trial.number, f"stopped at epoch {rung}", stop.reason)
            raise optuna.TrialPruned(stop.reason) from None
        except TrainingFailed as exc:
            trial.set_user_attr(rec.FAIL_REASON, str(exc))
            trial.set_user_attr(rec.SECONDS, time.perf_counter() - started)
            self.monitor.trial_finished(trial.number, "failed", str(exc))
            failure = TrainingFailed(str(exc))
        except KeyboardInterrupt as exc:
            trial.set_user_attr(rec.FAIL_REASON, INTERRUPTED[getattr(exc, "signal", "SIGINT")])
            raise
        except StorageError:  # the database is gone: nothing can be recorded, stop here
            raise
        except Exception as exc:  # a bug or an unforeseen error: fail this trial, say why
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
            trial.set_user_attr(rec.FAIL_REASON, reason)
            trial.set_user_attr(rec.SECONDS, time.perf_counter() - started)
            self.monitor.trial_finished(trial.number, "failed", reason)
            raise
        if failure is not None:
            # Out of the except block, so nothing holds the failed run's traceback: drop the
            # model, optimizer and batches before the next candidate needs the memory.
            del trainer
            release_memory(self.ctx.device)
            raise failure
        trial.set_user_attr(rec.SECONDS, time.perf_counter() - started)
        trial.set_user_attr(rec.IMAGES_PER_S, result.images_per_s)
        if not math.isfinite(result.accuracy):  # pragma: no cover - guarded by the trainer
            raise TrainingFailed("validation accuracy is not finite")
        return result.accuracy


class _EpochWatch:
    """After every epoch of a proxy: record its curve, report, and at a rung ask the early
    stopper (the study is read only at a rung, not after every epoch)."""

    def __init__(
        self, objective: Objective, trial: optuna.trial.Trial, cost_key: str | None, cost: float
    ) -> None:
        self.objective = objective
        self.trial = trial
        self.cost_key = cost_key
        self.cost = cost
        self.curve: list[float] = []
        self.passed: list[int] = []  # rungs this trial passed

    def __call__(self, e: EpochResult) -> None:
        trial, stopper = self.trial, self.objective.stopper
        self.curve.append(e.accuracy)
        trial.set_user_attr(rec.CURVE, list(self.curve))
        trial.set_user_attr(rec.ACCURACY, e.accuracy)
        if self.cost_key is None:
            trial.report(e.accuracy, e.epoch)
        self.objective.monitor.epoch_done(trial.number, e)
        if stopper is None or e.epoch not in stopper.rungs(e.epochs):
            return
        others = curve_points(
            trial.study.get_trials(deepcopy=False, states=WITH_CURVES),
            self.cost_key,
            exclude=trial.number,
        )
        decision = stopper.decide(others, self.cost, e.epoch, e.epochs, e.accuracy)
        if decision is None:
            return
        trial.set_user_attr(rec.RUNGS, [*self.passed, decision.rung])
        if decision.stop:
            trial.set_user_attr(rec.STOPPED_AT_EPOCH, decision.rung)
            raise StopTraining(decision.reason)
        self.passed.append(decision.rung)
        trial.set_user_attr(rec.PROMOTED, decision.reason)
