"""The search loop: sample and train until ``--trials`` are trained, as one object.

Re-running the same command continues the same study: finished trials are never redone and
``--trials`` is the study-wide number of trained trials (rejected candidates do not count).
Ctrl-C (or SIGTERM) fails the running trial with its reason and returns normally, so the
summary prints.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.proxy.context import proxy_context
from nas.search.early_stop import SuccessiveHalving
from nas.search.events import SearchMonitor
from nas.search.objective import Objective
from nas.search.settings import SearchSettings
from nas.search.slots import TrainingSlots
from nas.search.stats import StudyStats, study_stats
from nas.search.study import SearchStudy, open_search, search_source
from nas.study import record as rec
from nas.study.address import StudyAddress
from nas.study.cleanup import INTERRUPTED, fail_running, fail_stale, failed_meanwhile
from nas.study.protocol import SettingsSource
from nas.training import TrainingFailed, resolve_device
from nas.units import plural

MAX_REJECTIONS_IN_A_ROW = 1000

#: After a rejection (milliseconds of work) the loop goes on with the study statistics it
#: read at most this many seconds ago instead of reading every trial again.
STATS_EVERY = 5.0

#: How each second objective is named in a stopping reason.
COST_NAMES = {"params": "params", "flops": "FLOPs"}

Say = Callable[[str], None]


@dataclass
class SearchOutcome:
    """How a search ended."""

    study: optuna.Study
    settings: SearchSettings
    address: StudyAddress
    stats: StudyStats
    seconds: float
    stop_reason: str
    interrupted: bool = False
    trained_now: int = 0


def make_stopper(settings: SearchSettings) -> SuccessiveHalving | None:
    """The early stopper ``settings`` ask for (None: ``--early-stopping off``); its cost is the
    study's second objective."""
    if settings.early_stopping == "off":
        return None
    cost = settings.objectives[1] if len(settings.objectives) > 1 else None
    return SuccessiveHalving(
        eta=settings.eta,
        min_epochs=settings.min_epochs,
        cost_name=COST_NAMES.get(cost or ""),
        min_members=settings.min_members,
    )


class SlotGate:
    """The training gate of one worker: it holds at most one reserved training slot,
    reserved before sampling and kept while candidates are rejected; :meth:`admit` binds it
    to the trial that will be trained (see :mod:`nas.search.slots`)."""

    def __init__(self, slots: TrainingSlots) -> None:
        self.slots = slots
        self.reservation: int | None = None

    def ready(self) -> bool:
        """Hold a reservation (refreshed, or a new one); False when every slot is held by
        trials running elsewhere."""
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


@dataclass
class _State:
    """What the loop remembers between trials."""

    failures: int = 0
    rejections: int = 0
    waiting_said: bool = False
    stop_reason: str = ""
    interrupted: bool = False
    last: list[FrozenTrial] = field(default_factory=list)
    stats: StudyStats | None = None
    stats_at: float = -math.inf


class SearchLoop:
    """One worker's loop over an opened study: each turn cleans up, decides whether to stop,
    waits for a training slot or runs one trial."""

    def __init__(self, opened: SearchStudy, objective: Objective, gate: SlotGate, say: Say) -> None:
        self.opened = opened
        self.study = opened.study
        self.settings = opened.settings
        self.objective = objective
        self.gate = gate
        self.say = say
        self.state = _State()

    def run(self, monitor: SearchMonitor) -> SearchOutcome:
        """Run until the study has enough trained trials, the timeout, too many failures or
        rejections in a row, or an interrupt."""
        started = time.perf_counter()
        trained_before = study_stats(self.study, front=False).trained
        state = self.state
        with monitor:
            try:
                while not state.stop_reason:
                    self._turn(monitor, started)
            except KeyboardInterrupt as exc:
                reason = INTERRUPTED[getattr(exc, "signal", "SIGINT")]
                state.interrupted, state.stop_reason = True, reason
                fail_running(self.study, self.objective.started, reason)
            finally:
                self.gate.release()
        stats = study_stats(self.study)
        return SearchOutcome(
            self.study,
            self.settings,
            self.opened.address,
            stats,
            time.perf_counter() - started,
            state.stop_reason,
            state.interrupted,
            stats.trained - trained_before,
        )

    def _stats(self) -> StudyStats:
        """The study's statistics, read again unless the last trial was a rejection and they
        are fresh: a run of rejections costs no read of the whole study per candidate."""
        state = self.state
        last_rejected = bool(state.last) and rec.REJECTED in state.last[-1].user_attrs
        fresh = time.monotonic() - state.stats_at < STATS_EVERY
        if state.stats is not None and last_rejected and fresh:
            state.stats.rejected += 1
            return state.stats
        fail_stale(self.study)
        state.stats = study_stats(self.study, front=False)
        state.stats_at = time.monotonic()
        return state.stats

    def _stop_reason(self, stats: StudyStats, started: float) -> str:
        """Why the loop stops now ("" to go on)."""
        s, state = self.settings, self.state
        if stats.trained >= s.trials:
            return f"the study has {plural(stats.trained, 'trained trial')}"
        if s.timeout and time.perf_counter() - started > s.timeout:
            return f"timeout of {s.timeout:g}s reached"
        if state.failures >= s.max_failures:
            reason = state.last[-1].user_attrs.get(rec.FAIL_REASON, "?") if state.last else "?"
            return f"{plural(state.failures, 'trial')} failed in a row; the last one: {reason}"
        if state.rejections >= MAX_REJECTIONS_IN_A_ROW:
            return (
                f"{state.rejections} candidates in a row exceeded the limit; "
                "raise --param-limit or narrow the space"
            )
        return ""

    def _turn(self, monitor: SearchMonitor, started: float) -> None:
        """One turn: clean up, decide whether to stop, wait for a slot, or run one trial."""
        stats = self._stats()
        self.gate.slots.free_failed(t.number for t in stats.trials if t.state == TrialState.FAIL)
        monitor.totals(
            stats.trained,
            self.settings.trials,
            stats.rejected,
            stats.stopped,
            stats.failed,
            stats.best_accuracy,
        )
        self.state.stop_reason = self._stop_reason(stats, started)
        if self.state.stop_reason:
            return
        if not self.gate.ready():
            self._wait()
            return
        self._run_one()

    def _wait(self) -> None:
        """Every slot is held by a trial being trained elsewhere: wait for them."""
        s = self.settings
        if not self.state.waiting_said:
            self.say(
                f"all {s.trials} training slots are taken by trials running in other workers; "
                f"waiting for them (a dead worker's trial is retried after the {s.grace_period}s "
                "grace period)"
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
                f"because its heartbeats stopped for over {self.settings.grace_period}s (the "
                "database was away); its result is discarded and its retry trains it again"
            )
            self.gate.release()
            return
        t = state.last[-1]
        state.failures = state.failures + 1 if t.state == TrialState.FAIL else 0
        state.rejections = state.rejections + 1 if rec.REJECTED in t.user_attrs else 0
        if t.state == TrialState.FAIL:
            self.gate.release()
        elif rec.REJECTED not in t.user_attrs:  # trained (slot consumed) or lost the slot
            self.gate.consumed()


def run_search(
    settings: SearchSettings | SettingsSource,
    monitor: SearchMonitor,
    *,
    worker: int = 0,
    log: Say | None = None,
    objective_cls: type[Objective] = Objective,
    enqueue: bool = True,
) -> SearchOutcome:
    """Run (or continue) a study until it has enough trained trials, the timeout passes, or
    the user interrupts.

    Args:
        settings: settings built in Python (a field off its default counts as given, see
            :func:`~nas.search.study.search_source`), or what a command line gave (resolved
            against the study's record).
        worker: this worker's index.
        log: where one-line messages go (default stderr).
        objective_cls: the objective (benchmarks replace training).
        enqueue: queue the presets if the settings ask (a ``--workers`` child does not).

    Raises:
        NasError: for bad settings, missing data or an unreachable database.
    """
    say = log or (lambda text: print(text, file=sys.stderr))
    source = settings if isinstance(settings, SettingsSource) else search_source(settings)
    opened = open_search(source, say=say, worker=worker, enqueue=enqueue)
    if opened.queued:
        say(f"queued presets that fit the limits: {', '.join(opened.queued)}")
    s = opened.settings
    device = resolve_device(s.device)
    ctx = proxy_context(s.proxy, opened.data, device, opened.data_seed)
    gate = SlotGate(opened.slots)
    objective = objective_cls(s, opened.space, ctx, monitor, make_stopper(s), gate)
    say(
        f"study {opened.address.name!r} in {opened.address.safe}: "
        f"{len(ctx.split.train):,} training / {plural(len(ctx.split.val), 'validation image')} on "
        f"{device}"
    )
    return SearchLoop(opened, objective, gate, say).run(monitor)
