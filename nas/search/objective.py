"""The objective: sample, count, reject or train a proxy, report. Nothing else.

Per trial, user attributes record ``arch`` (the config dict :func:`nas.build_model` takes),
``params`` and ``flops``; rejected trials add ``rejected`` (the reason) and end PRUNED with a
positive constraint value, so TPE and NSGA-II learn where the limit lies; trained trials
add ``curve`` (validation accuracy per epoch), ``accuracy``, ``seconds``, ``device`` and
``images_per_s``, and ``rungs`` (the early-stopping rungs it reached; ``promoted``: why it
went on); early-stopped ones add ``stopped_early`` (why) and ``stopped_at_epoch`` and end
PRUNED; failed ones
add ``fail_reason`` and end FAIL.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import NoReturn

import optuna

from nas.config import ArchConfig
from nas.counting import count
from nas.errors import ConfigError, StorageError
from nas.proxy.context import TrainingContext, candidate_zero_cost, init_seed, make_trainer
from nas.search.early_stop import WITH_CURVES, SuccessiveHalving, curve_points
from nas.search.events import SearchMonitor
from nas.search.settings import SearchSettings
from nas.search.slots import worker_id
from nas.space import SearchSpace
from nas.training import EpochResult, StopTraining, TrainingFailed
from nas.training.trainer import release_memory
from nas.units import over_limit

#: Test hook: ``NAS_INJECT_FAULT="nan@2,oom@4"`` makes trials 2 and 4 fail that way.
FAULT_ENV = "NAS_INJECT_FAULT"


def injected_fault(trial_number: int) -> str | None:
    """The fault :data:`FAULT_ENV` asks for in ``trial_number``, if any."""
    for item in os.environ.get(FAULT_ENV, "").split(","):
        kind, _, number = item.strip().partition("@")
        if kind in ("nan", "oom") and number.strip().isdigit() and int(number) == trial_number:
            return kind
    return None


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
    ) -> None:
        self.settings = settings
        self.space = space
        self.ctx = ctx
        self.monitor = monitor
        self.stopper = stopper
        self.may_train: Callable[[optuna.trial.Trial], bool] = lambda trial: True
        self.started: set[int] = set()
        self.worker = worker_id()

    def __call__(self, trial: optuna.trial.Trial) -> float | tuple[float, float]:
        started = time.perf_counter()
        self.started.add(trial.number)
        trial.set_user_attr("worker", self.worker)
        retry_of = trial.storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")
        if retry_of is not None:
            trial.set_user_attr("retry_of", retry_of)
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
        params = count(arch, flops=False).params
        trial.set_user_attr("arch", arch.to_dict())
        trial.set_user_attr("params", params)
        limit = self.settings.param_limit
        self.constrain(trial, "params", float(params - limit))
        if params > limit:
            self._reject(trial, over_limit(params, limit, "params"), started)
        flops: int | None = None
        flops_limit = self.settings.flops_limit
        if flops_limit is not None:  # counted before training, only for what fits the params
            flops = self._count_flops(trial, arch)
            # in parameter-limit units, so that NSGA-II's sum of violations weighs both alike
            self.constrain(trial, "flops", (flops - flops_limit) / flops_limit * limit)
            if flops > flops_limit:
                self._reject(trial, over_limit(flops, flops_limit, "FLOPs"), started)
        if not self.may_train(trial):
            trial.set_user_attr("not_trained", "the study already has enough trained trials")
            raise optuna.TrialPruned("budget of trained trials reached")
        if flops is None:
            flops = self._count_flops(trial, arch)
        trial.set_user_attr("training", True)
        return self._train(trial, arch, params, flops, started)

    def _count_flops(self, trial: optuna.trial.Trial, arch: ArchConfig) -> int:
        """Count ``arch``'s FLOPs (fvcore) and record them on ``trial``."""
        flops = count(arch).flops
        assert flops is not None
        trial.set_user_attr("flops", flops)
        return flops

    def constrain(self, trial: optuna.trial.Trial, key: str, violation: float) -> None:
        """Record how far over the limit ``key`` (``params``, ``flops``) ``trial`` is (> 0:
        infeasible), so that the sampler learns where the limit lies."""
        trial.set_constraint(key, violation)

    def _reject(self, trial: optuna.trial.Trial, reason: str, started: float) -> NoReturn:
        trial.set_user_attr("rejected", reason)
        self.monitor.rejected(trial.number, reason, time.perf_counter() - started)
        raise optuna.TrialPruned(reason)

    def _train(
        self, trial: optuna.trial.Trial, arch: ArchConfig, params: int, flops: int, started: float
    ) -> float | tuple[float, float]:
        ctx, settings = self.ctx, self.settings
        self.monitor.trial_started(trial.number, arch, params, flops, ctx.recipe.epochs)
        trainer = make_trainer(
            ctx, arch, init_seed(settings.seed, trial.number), fault=injected_fault(trial.number)
        )
        trial.set_user_attr(
            "zero_cost", candidate_zero_cost(ctx, trainer.model, params=params, flops=flops)
        )
        curve: list[float] = []
        trial.set_user_attr("curve", curve)  # a retry starts afresh
        trial.set_user_attr("rungs", [])
        single = len(settings.objectives) == 1
        cost_key = None if single else settings.objectives[1]
        # the second objective: what early stopping compares and the trial's second value
        cost = 0.0 if single else float(params if cost_key == "params" else flops)
        passed: list[int] = []  # rungs this trial passed

        def on_epoch(e: EpochResult) -> None:
            curve.append(e.accuracy)
            trial.set_user_attr("curve", list(curve))
            trial.set_user_attr("accuracy", e.accuracy)
            if single:
                trial.report(e.accuracy, e.epoch)
            self.monitor.epoch_done(trial.number, e)
            if self.stopper is not None and e.epoch in self.stopper.rungs(e.epochs):
                # the study is read only at a rung, not after every epoch
                others = curve_points(
                    trial.study.get_trials(deepcopy=False, states=WITH_CURVES),
                    cost_key,
                    exclude=trial.number,
                )
                decision = self.stopper.decide(others, cost, e.epoch, e.epochs, e.accuracy)
                if decision is not None:
                    trial.set_user_attr("rungs", [*passed, decision.rung])
                    if decision.stop:
                        trial.set_user_attr("stopped_at_epoch", decision.rung)
                        raise StopTraining(decision.reason)
                    passed.append(decision.rung)
                    trial.set_user_attr("promoted", decision.reason)

        trial.set_user_attr("device", str(ctx.device))
        failure: TrainingFailed | None = None
        try:
            result = trainer.fit(on_epoch, lambda p: self.monitor.step_progress(trial.number, p))
        except StopTraining as stop:
            trial.set_user_attr("stopped_early", stop.reason)
            trial.set_user_attr("seconds", time.perf_counter() - started)
            rung = trial.user_attrs.get("stopped_at_epoch")
            self.monitor.trial_finished(trial.number, f"stopped at epoch {rung}", stop.reason)
            raise optuna.TrialPruned(stop.reason) from None
        except TrainingFailed as exc:
            trial.set_user_attr("fail_reason", str(exc))
            trial.set_user_attr("seconds", time.perf_counter() - started)
            self.monitor.trial_finished(trial.number, "failed", str(exc))
            failure = TrainingFailed(str(exc))
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted by the user (Ctrl-C)")
            raise
        except StorageError:  # the database is gone: nothing can be recorded, stop here
            raise
        except Exception as exc:  # a bug or an unforeseen error: fail this trial, say why
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
            trial.set_user_attr("fail_reason", reason)
            trial.set_user_attr("seconds", time.perf_counter() - started)
            self.monitor.trial_finished(trial.number, "failed", reason)
            raise
        if failure is not None:
            # Out of the except block, so nothing holds the failed run's traceback: drop the
            # model, optimizer and batches before the next candidate needs the memory.
            del trainer
            release_memory(ctx.device)
            raise failure
        trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("images_per_s", result.images_per_s)
        accuracy = result.accuracy
        if not math.isfinite(accuracy):  # pragma: no cover - guarded by the trainer
            raise TrainingFailed("validation accuracy is not finite")
        self.monitor.trial_finished(trial.number, "complete", f"accuracy {accuracy:.4f}")
        if single:
            return accuracy
        return accuracy, cost
