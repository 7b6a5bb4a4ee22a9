"""The search loop: sample and evaluate until ``--trials`` are trained, as one object.

The loop knows nothing of how a candidate is evaluated (:mod:`nas.search.evaluate`): it asks
the objective for one trial at a time, counts the study's trials, decides when to stop and
waits for a training slot. ``nas search`` runs it with the proxy trainer
(:func:`run_opened`); the tabular benchmark runs the same loop with a table lookup.

Re-running the same command continues the same study: finished trials are never redone and
``--trials`` is the study-wide number of trained trials (rejected candidates do not count).
Ctrl-C (or SIGTERM) fails the running trial with its reason and returns normally, so the
summary prints.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.budget import Budget
from nas.errors import NasError
from nas.hardware.cache import HardwareMeter, study_meter
from nas.hardware.context import HardwareContext
from nas.objectives import METRICS
from nas.search.evaluate import Evaluator, ProxyEvaluator
from nas.search.events import SearchMonitor, Totals
from nas.search.objective import ArchSpace, Candidates, Objective, OpenGate, wanted_metrics
from nas.search.settings import SearchSettings
from nas.search.slots import TrainingSlots
from nas.search.study import SearchStudy
from nas.study.address import StudyAddress
from nas.study.cleanup import (
    INTERRUPTED,
    fail_running,
    fail_stale,
    failed_meanwhile,
    retry_interrupted,
    settled_failures,
)
from nas.study.record import StudyRecord, TrialRecord
from nas.study.stats import StudyStats, stats_since, study_stats
from nas.training import TrainingFailed
from nas.units import plural

MAX_REJECTIONS_IN_A_ROW = 1000

#: Rejections in a row (by any limit) after which the study's latency and memory limits are
#: checked, once per run, against the space's cheapest candidate measured where the study
#: measures (a count limit is checked before the study starts; a measurement of every
#: combination of the space costs seconds, too much for every start). Every hardware limit
#: is checked, not only the last rejection's: rejections by the parameter limit mix in.
CHECK_HARDWARE_AFTER = 50

#: After a rejection (milliseconds of work) the loop goes on with the study statistics it
#: read at most this many seconds ago instead of reading every trial again.
STATS_EVERY = 5.0

Say = Callable[[str], None]


#: The exit code of a search that gave up (trials failing, or every candidate rejected, in a
#: row): the study holds why, so :meth:`nas.Search.run` returns it.
GAVE_UP = 1


@dataclass
class SearchOutcome:
    """How a search ended."""

    study: optuna.Study
    settings: SearchSettings
    address: StudyAddress | None
    stats: StudyStats
    seconds: float
    stop_reason: str
    interrupted: bool = False
    trained_now: int = 0
    #: The command's exit code: 0, 130 after Ctrl-C or SIGTERM, 1 when the search gave up
    #: (trials failing, or every candidate rejected, in a row), else the first failing
    #: worker's (``--workers K``).
    exit_code: int = 0
    #: Whether the data has a test split (``nas train-winners`` needs one).
    has_test: bool = True

    @property
    def had_enough(self) -> bool:
        """Whether this run trained nothing because the study already had ``--trials``
        trained trials (``--trials`` counts the study's trained trials, not this run's)."""
        return self.trained_now == 0 and self.stats.trained >= self.settings.trials

    @classmethod
    def of(
        cls,
        study: optuna.Study,
        settings: SearchSettings,
        address: StudyAddress | None,
        since: datetime.datetime,
        stop_reason: str,
        interrupted: bool = False,
        exit_code: int = 0,
        workers: Collection[str] | None = None,
    ) -> SearchOutcome:
        """How a run that started at ``since`` ended, with the study's statistics now; its
        trained trials are those that started since (a worker's clock, as Optuna's trial
        times) in its ``workers`` (``host:pid``; None: any)."""
        stats = study_stats(study)
        now = datetime.datetime.now()
        return cls(
            study,
            settings,
            address,
            stats,
            (now - since).total_seconds(),
            stop_reason,
            interrupted,
            stats_since(stats, since, workers),
            130 if interrupted else exit_code,
        )


class Gate(Protocol):
    """One worker's training gate (:class:`SlotGate` over the study's slots, or
    :class:`FreeGate` when there are none)."""

    def ready(self, total: int) -> bool: ...

    def admit(self, trial_number: int) -> bool: ...

    def consumed(self) -> None: ...

    def release(self) -> None: ...

    def free_failed(self, trials: Iterable[int]) -> None: ...


class FreeGate(OpenGate):
    """A gate without slots: one worker, and the loop's own count of trained trials (a
    benchmark's in-memory study)."""

    def ready(self, total: int) -> bool:
        return True

    def consumed(self) -> None:
        return None

    def release(self) -> None:
        return None

    def free_failed(self, trials: Iterable[int]) -> None:
        return None


class SlotGate:
    """The training gate of one worker: it holds at most one reserved training slot,
    reserved before sampling and kept while candidates are rejected; :meth:`admit` binds it
    to the trial that will be trained (see :mod:`nas.search.slots`)."""

    def __init__(self, slots: TrainingSlots) -> None:
        self.slots = slots
        self.reservation: int | None = None

    def ready(self, total: int) -> bool:
        """Hold a reservation (refreshed, or a new one) among ``total`` slots, the study's
        ``--trials`` as recorded now; False when every slot is held by trials running
        elsewhere."""
        self.slots.total = total
        if self.reservation is not None and not self.slots.refresh(self.reservation):
            self.reservation = None
        if self.reservation is None:
            self.reservation = self.slots.reserve()
        return self.reservation is not None

    def admit(self, trial_number: int) -> bool:
        return self.reservation is not None and self.slots.bind(self.reservation, trial_number)

    def consumed(self) -> None:
        """The reservation went to a trained trial (or was lost): reserve anew next time."""
        self.reservation = None

    def release(self) -> None:
        """Give the reservation back (its trial failed, or this worker stops)."""
        if self.reservation is not None:
            self.slots.release(self.reservation)
        self.reservation = None

    def free_failed(self, trials: Iterable[int]) -> None:
        """Free the slots of failed trials (their retries train again)."""
        self.slots.free_failed(trials)


@dataclass
class _State:
    """What the loop remembers between trials."""

    failures: int = 0
    rejections: int = 0
    #: The limits the current run of rejections was over (registry names).
    over: set[str] = field(default_factory=set)
    hardware_checked: bool = False
    gave_up: bool = False
    waiting_said: bool = False
    stop_reason: str = ""
    interrupted: bool = False
    last: list[FrozenTrial] = field(default_factory=list)
    stats: StudyStats | None = None
    stats_at: float = -math.inf
    #: The trained trials the study should have, as recorded now (a worker started later
    #: with another --trials records it for every worker).
    target: int = 0
    #: The trials of dead workers this worker has just failed (their retries queued).
    failed_here: list[int] = field(default_factory=list)


@dataclass
class SearchLoop:
    """One worker's loop over an opened study: each turn cleans up, decides whether to stop,
    waits for a training slot or runs one trial.

    Attributes:
        address: where the study lives (None: in memory).
        until: an extra reason to stop (see :class:`Hooks`).
        meter: the study's hardware meter (None: the study measures no latency or memory).
        names: each setting as the user names it (:attr:`nas.settings.Resolved.names`; a
            flag if absent), for the stop reasons that tell which limit to raise.
    """

    study: optuna.Study
    settings: SearchSettings
    objective: Objective
    gate: Gate
    say: Say
    address: StudyAddress | None = None
    until: Callable[[StudyStats], str] | None = None
    meter: HardwareMeter | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    state: _State = field(default_factory=lambda: _State())

    def run(self, monitor: SearchMonitor) -> SearchOutcome:
        """Run until the study has enough trained trials, the timeout, too many failures or
        rejections in a row, or an interrupt."""
        since = datetime.datetime.now()
        started = time.perf_counter()
        state = self.state
        with monitor:
            try:
                while not state.stop_reason:
                    self._turn(monitor, started)
            except KeyboardInterrupt as exc:
                reason = INTERRUPTED[getattr(exc, "signal", "SIGINT")]
                state.interrupted, state.stop_reason = True, reason
                fail_running(self.study, self.objective.started, reason)
                self._retry_interrupted()
            finally:
                self.gate.release()
        return SearchOutcome.of(
            self.study,
            self.settings,
            self.address,
            since,
            state.stop_reason,
            state.interrupted,
            exit_code=GAVE_UP if state.gave_up else 0,
            workers={self.objective.worker},
        )

    def _retry_interrupted(self) -> None:
        """Queue the retry of the trial an interrupt stopped now, under the set-up lock, so
        that a worker still running trains it next: a pre-empted job's trial waited for that
        very job to start again, and a study whose other workers filled its slots never
        trained it. With the database away, the next start queues it."""
        if self.address is None:  # an in-memory study: no later start
            return
        try:
            with self.address.lock():
                retried = retry_interrupted(self.study, only=self.objective.started)
        except Exception:  # the database went away: the next start queues it
            return
        with contextlib.suppress(OSError):  # a --workers child whose launcher died
            for interrupted, retry in retried:
                self.say(
                    f"trial {interrupted} was interrupted; it is retried first as trial "
                    f"{retry}, by the study's next worker to train"
                )

    def _stats(self) -> StudyStats:
        """The study's statistics, read again unless the last trial was a rejection and they
        are fresh: a run of rejections costs no read of the whole study per candidate."""
        state = self.state
        last_rejected = bool(state.last) and TrialRecord(state.last[-1]).is_rejected
        fresh = time.monotonic() - state.stats_at < STATS_EVERY
        if state.stats is not None and last_rejected and fresh:
            state.stats.rejected += 1
            return state.stats
        state.failed_here = fail_stale(self.study)
        state.stats = study_stats(self.study, front=False)
        state.stats_at = time.monotonic()
        state.target = StudyRecord(self.study).trials or self.settings.trials
        return state.stats

    def _stop_reason(self, stats: StudyStats, started: float) -> str:
        """Why the loop stops now ("" to go on)."""
        s = self.settings
        if stats.trained >= self.state.target:
            return f"the study has {plural(stats.trained, 'trained trial')}"
        if s.timeout and time.perf_counter() - started > s.timeout:
            return f"timeout of {s.timeout:g}s reached"
        given_up = self._given_up()
        self.state.gave_up = bool(given_up)
        return given_up or (self.until(stats) if self.until is not None else "")

    def _given_up(self) -> str:
        """Why the search cannot go on ("" if it can): trials failing in a row, or every
        candidate rejected, too many times in a row (a command exits 1 then)."""
        s, state = self.settings, self.state
        if state.failures >= s.max_failures:
            reason = (TrialRecord(state.last[-1]).fail_reason if state.last else None) or "?"
            return f"{plural(state.failures, 'trial')} failed in a row; the last one: {reason}"
        if state.rejections >= CHECK_HARDWARE_AFTER and not state.hardware_checked:
            state.hardware_checked = True
            unreachable = self._unreachable_hardware()
            if unreachable:  # the study exists now, and pins its limits
                study = self.names.get("study", "--study")
                return (
                    f"{state.rejections} candidates in a row were rejected: {unreachable} "
                    f"(in another {study}: this one keeps its limits)"
                )
        if state.rejections >= MAX_REJECTIONS_IN_A_ROW:
            return (
                f"{state.rejections} candidates in a row exceeded the limit"
                f"{self._last_reason(state)}; raise {self._limit_flags(state)} or narrow the space"
            )
        return ""

    @staticmethod
    def _last_reason(state: Any) -> str:
        """`` (the last: 0.389 MB peak memory > limit 0.3 MB)``, or nothing."""
        reason = TrialRecord(state.last[-1]).rejected if state.last else None
        return f" (the last: {reason})" if reason else ""

    @staticmethod
    def _over(trial: FrozenTrial) -> set[str]:
        """The limited metrics a rejected trial was over."""
        constraints = dict(getattr(trial, "constraints", None) or {})
        return {
            name
            for name, m in METRICS.items()
            if m.limit is not None and constraints.get(name, 0) > 0
        }

    def _limit_flags(self, state: Any) -> str:
        """The flags of the limits the current run of rejections was over, in registry
        order (--param-limit if that is not known)."""
        over = [m.limit for name, m in METRICS.items() if name in state.over]
        named = [self.names.get(limit.setting, limit.flag) for limit in over if limit is not None]
        return " or ".join(named) or self.names.get("param_limit", "--param-limit")

    def _unreachable_hardware(self) -> str:
        """Why the study's latency or memory limits cannot be met ("" if they can, or if
        the candidates are not a space's): the space's cheapest candidate measured by the
        study's own meter is over one of them."""
        candidates = self.objective.candidates
        limits = candidates.budget.limits
        hardware = {m: limits[m] for m in limits if METRICS[m].hardware}
        if not hardware or not isinstance(candidates.space, ArchSpace):  # a table's cells
            return ""
        try:
            arch = candidates.space
            Budget(hardware).check_reachable(
                arch.space, arch, names=self.names, measure=candidates.measure
            )
        except NasError as exc:
            return str(exc)
        return ""

    def _turn(self, monitor: SearchMonitor, started: float) -> None:
        """One turn: clean up, decide whether to stop, wait for a slot, or run one trial."""
        stats = self._stats()
        settled = settled_failures(stats.trials, self.settings.grace_period)
        self.gate.free_failed([*settled, *self.state.failed_here])
        self.state.failed_here = []
        monitor.totals(
            Totals(
                stats.trained,
                self.state.target,
                stats.rejected,
                stats.stopped,
                stats.failed,
                stats.best_accuracy,
            )
        )
        self.state.stop_reason = self._stop_reason(stats, started)
        if self.state.stop_reason:
            return
        if not self.gate.ready(self.state.target):
            self._wait()
            return
        self._run_one()

    def _wait(self) -> None:
        """Every slot is held by a trial being trained elsewhere: wait for them."""
        s = self.settings
        if not self.state.waiting_said:
            self.say(
                f"the study's {plural(self.state.target, 'training slot')} "
                f"{'is' if self.state.target == 1 else 'are all'} held by trials training in "
                "other workers; waiting until they finish (one whose worker "
                f"dies meanwhile is retried here after the {s.grace_period}s grace period)"
            )
            self.state.waiting_said = True
        time.sleep(min(5.0, s.grace_period / 4))

    def _run_one(self) -> None:
        """Sample and run one trial; the gate's reservation is consumed by a trained trial,
        kept through a rejection, and given back when the trial failed."""
        state = self.state
        try:
            self.study.optimize(
                self.objective,
                n_trials=1,
                catch=(TrainingFailed, RuntimeError, ValueError),
                gc_after_trial=False,
                callbacks=[lambda s, t: state.last.append(t)],
            )
        except (ValueError, AssertionError):  # what Optuna raises for a trial finished elsewhere
            lost = failed_meanwhile(self.study, self.objective.started)
            if lost is None:
                raise
            self.say(
                f"trial {lost.number} finished here, but another worker had already failed it "
                f"because its heartbeats had not arrived for over {self.settings.grace_period}s "
                "(the database was away, or this process stalled); its result is discarded and "
                "its retry trains it again"
            )
            self.gate.release()
            return
        t = state.last[-1]
        rejected = TrialRecord(t).is_rejected
        state.failures = state.failures + 1 if t.state == TrialState.FAIL else 0
        state.rejections = state.rejections + 1 if rejected else 0
        state.over = state.over | self._over(t) if rejected else set()
        if t.state == TrialState.FAIL:
            self.gate.release()
        elif not rejected:  # trained (slot consumed) or lost the slot
            self.gate.consumed()


#: Makes the evaluator of an opened study: (the opened study, the device it trains on) ->
#: evaluator. The loop never sees how: :meth:`ProxyEvaluator.of` trains proxies, a benchmark
#: looks scores up or makes them up.
MakeEvaluator = Callable[[SearchStudy, Any], Evaluator]


@dataclass(frozen=True)
class Hooks:
    """What a benchmark or a test changes in a search run from Python, all else as ``nas
    search`` runs it.

    Attributes:
        make_evaluator: what evaluates the candidates (default: the proxy trainer).
        candidates: how candidates are drawn and judged (an ablation's own).
        until: an extra reason to stop, asked before every trial with the study's
            statistics ("" to go on; e.g. a budget of proxy epochs).
    """

    make_evaluator: MakeEvaluator = ProxyEvaluator.of
    candidates: type[Candidates] = Candidates
    until: Callable[[StudyStats], str] | None = None


def run_opened(
    opened: SearchStudy,
    monitor: SearchMonitor,
    device: Any,
    say: Say,
    hooks: Hooks = Hooks(),
) -> SearchOutcome:
    """Run one worker of the opened study on ``device``: every candidate that fits is trained
    as a proxy (:meth:`ProxyEvaluator.of`), unless ``hooks`` say otherwise."""
    evaluator = hooks.make_evaluator(opened, device)
    s, data = opened.settings, opened.data
    space = ArchSpace(opened.space, data.in_channels, data.input_size, data.num_classes)
    say(f"study {opened.address.name!r} in {opened.address.safe}: {evaluator.describe()}")
    gate = SlotGate(opened.slots)
    loop = search_loop(
        opened.study,
        s,
        space,
        evaluator,
        monitor,
        say,
        gate,
        hooks.candidates,
        hardware=opened.hardware,
    )
    loop.address, loop.until, loop.names = opened.address, hooks.until, opened.resolved.names
    loop.state.failed_here = list(opened.failed_at_start)
    outcome = loop.run(monitor)
    if loop.meter is not None and (measured := loop.meter.summary()):
        say(measured)
    return outcome


def search_loop(
    study: optuna.Study,
    settings: SearchSettings,
    space: Any,
    evaluator: Evaluator,
    monitor: SearchMonitor,
    say: Say,
    gate: Gate | None = None,
    candidates: type[Candidates] = Candidates,
    *,
    hardware: HardwareContext | None = None,
) -> SearchLoop:
    """The loop of one worker over ``study``: candidates from ``space`` (a
    :class:`nas.search.objective.CandidateSpace`) under ``settings``' limits, observed by
    ``evaluator``; without a gate, a single worker counts its own trained trials. With the
    study's checked ``hardware`` context, latency and memory are measured there (the
    study's hardware meter, kept in the study) and the evaluator measures the rest."""
    gate = gate or FreeGate()
    meter = None
    if hardware is not None:
        meter = study_meter(study, hardware, settings, evaluator.measure)
        say(meter.describe())
    measure = evaluator.measure if meter is None else meter
    wanted = wanted_metrics(settings.objectives, evaluator.knows)
    drawn = candidates(space, Budget(settings.limits), wanted, measure)
    objective = Objective(
        drawn, evaluator, tuple(settings.objectives), settings.sampler, monitor, gate
    )
    return SearchLoop(study, settings, objective, gate, say, meter=meter)
