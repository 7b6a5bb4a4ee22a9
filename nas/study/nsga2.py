"""NSGA-II that learns the limits from rejected candidates, for one worker or many.

Optuna's NSGA-II builds its generations from COMPLETE trials only, and a rejected candidate
ends PRUNED, so plain NSGA-II never sees a rejection. :class:`RejectionAwareNSGAII` counts
rejected and early-stopped candidates as members of their generation: a rejection is an
infeasible member (constraint value > 0), which Deb's constrained domination ranks behind
every feasible one and, among infeasible ones, by how far over the limit it was; a stopped
trial is a feasible member with the accuracy it had when it stopped. Parents are therefore
chosen knowing where the limit lies, and generations advance with every sampled candidate,
not only with trained ones.

Several workers share one study, and a rejection finishes in milliseconds while a trained
candidate runs for minutes. A generation is therefore counted by the candidates *assigned*
to it, running ones included, and a candidate that finishes after the next generation's
parents were chosen joins the next selection (see :class:`RejectionAwareNSGAII`).
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import NSGAIISampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.study import _optuna
from nas.study.record import StudyRecord, TrialRecord, set_trial_system
from nas.study.storage import exclusive, with_retry

#: Trials still running or queued: members of the generation they were assigned to.
_UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)

#: Serialises generation assignment among the threads of one process (in-memory studies).
_THREAD_LOCK = threading.Lock()


def _record(records: dict[int, dict[str, Any]], generation: int) -> dict[str, Any]:
    """The recorded selection of ``generation`` (an empty one if there is none: generation
    0, or a study sampled before selections were recorded)."""
    return records.get(generation) or {"pool": [], "parents": []}


class _DatabaseLock:
    """The study database's lock (:func:`nas.study.storage.exclusive`), taken by a method so
    that :func:`nas.study.storage.with_retry` can retry it while the database is away."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._held: contextlib.AbstractContextManager[None] | None = None

    def take(self) -> None:
        held = exclusive(self.url)  # a fresh one per try: a failed one cannot be entered again
        held.__enter__()
        self._held = held

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(Exception):  # a lost connection took the lock with it
                held.__exit__(None, None, None)


@contextlib.contextmanager
def study_lock(study: Study) -> Iterator[None]:
    """Hold ``study``'s database lock (a PostgreSQL advisory lock, a file lock beside a
    SQLite file), so that the workers sharing the study assign generations one after the
    other; an in-memory study takes a process lock."""
    backend = _optuna.rdb_of(study)
    with _THREAD_LOCK:
        if backend is None:
            yield
            return
        lock = _DatabaseLock(backend.url)
        with_retry(lock, backend).take()
        try:
            yield
        finally:
            lock.release()


class RejectionAwareNSGAII(NSGAIISampler):
    """NSGA-II whose generations include rejected (infeasible) and early-stopped candidates,
    for one worker or many sharing a study.

    * A trial joins a generation when it is sampled (the system attribute named by
      :meth:`generation_key`, Optuna's key for this class), and a generation is full when
      ``population_size`` trials have joined it, whatever their state: running and queued
      ones count, and only trials that can never be members (FAIL, ``not_trained``, a
      rejection without a constraint value) are left out. A generation therefore holds
      ``population_size`` members, fewer only when one of them fails after the next
      generation has begun (a retry of a dead worker's trial inherits its generation and
      fills the place again).
    * The parents of generation ``g`` are NSGA-II's elitist selection (Deb's constrained
      non-dominated sorting, then crowding distance) over the parents of ``g - 1`` and every
      finished member of an earlier generation that no earlier selection has considered.
      With one worker, whose trials finish in order, these are exactly the members of
      ``g - 1``: the selection is NSGA-II's own. With several workers, a member that
      finishes after its successors were sampled joins the next selection instead of none.
      The selection is chosen again whenever its pool has changed since the last choice,
      and each is recorded (:meth:`nas.study.record.StudyRecord.selections`), so that the
      members a selection considered can be audited.
    """

    @classmethod
    def generation_key(cls) -> str:
        """The system attribute that holds a trial's generation: Optuna names it after the
        sampler's own class (``RejectionAwareNSGAII:generation``)."""
        return _optuna.generation_key(cls)

    @classmethod
    def generation_of(cls, record: TrialRecord) -> int | None:
        """The generation a trial of this sampler was assigned to, if any."""
        value = record.system(cls.generation_key())
        return None if value is None else int(value)

    def _as_member(self, t: FrozenTrial, costs: Sequence[str]) -> FrozenTrial | None:
        """``t`` as a generation member (COMPLETE, with its values: accuracy, then ``costs``,
        the study's other objectives), or None if it is none."""
        if t.state == TrialState.COMPLETE:
            return t
        r = TrialRecord(t)
        if t.state != TrialState.PRUNED or not t.constraints:
            return None
        if r.is_rejected:
            accuracy = 0.0  # never feasible: constrained domination ranks it by violation
        elif r.is_stopped:
            accuracy = r.accuracy or 0.0
        else:
            return None
        member = copy.copy(t)
        member.state = TrialState.COMPLETE
        member.values = [accuracy, *(r.value(c) or 0.0 for c in costs)]
        return member

    def _holds_place(self, t: FrozenTrial, costs: Sequence[str]) -> bool:
        """Whether ``t`` takes a place in its generation: unfinished, or a finished member."""
        if TrialRecord(t).not_trained:
            return False
        return t.state in _UNFINISHED or self._as_member(t, costs) is not None

    def _generation(self, t: FrozenTrial) -> int | None:
        """The generation ``t`` was assigned to, if any."""
        return self.generation_of(TrialRecord(t))

    def _generation_or_before(self, t: FrozenTrial) -> int:
        """``t``'s generation, -1 for a trial sampled otherwise (e.g. before a change of
        sampler): it feeds every selection."""
        generation = self._generation(t)
        return -1 if generation is None else generation

    @staticmethod
    def _trials(study: Study) -> list[FrozenTrial]:
        """Every trial of ``study`` as the storage holds it now (not a trial's cached view)."""
        return study.get_trials(deepcopy=False)

    def _members(self, trials: Sequence[FrozenTrial], study: Study) -> list[FrozenTrial]:
        """The generation members among ``trials`` (see :meth:`_as_member`)."""
        costs = StudyRecord(study).costs
        return [m for t in trials if (m := self._as_member(t, costs)) is not None]

    def _assign(self, study: Study, trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> int:
        """The generation of ``trial``, assigned (and recorded) now if it has none: the latest
        one while fewer than ``population_size`` trials hold a place in it, else the next."""
        stored = self._generation(trial)
        if stored is not None:  # assigned before, or a retry that inherits its generation
            return stored
        others = [t for t in trials if t.number != trial.number]
        assigned = [g for t in others if (g := self._generation(t)) is not None]
        latest = max(assigned, default=0)
        costs = StudyRecord(study).costs
        held = sum(
            1 for t in others if self._generation(t) == latest and self._holds_place(t, costs)
        )
        assert self.population_size is not None
        generation = latest if held < self.population_size else latest + 1
        set_trial_system(study, trial, self.generation_key(), generation)
        return generation

    def _select(
        self,
        study: Study,
        generation: int,
        trials: Sequence[FrozenTrial],
        started: datetime,
        by: int | None,
    ) -> list[FrozenTrial]:
        """The parents of ``generation`` from the members among ``trials`` (read at
        ``started``): NSGA-II's elitist selection over the parents of ``generation - 1`` and
        every finished member of an earlier generation that no selection of an earlier
        generation has seen yet; chosen again only when that pool differs from the recorded
        one."""
        if generation == 0:
            return []
        study_record = StudyRecord(study)
        records = study_record.selections()
        members = {m.number: m for m in self._members(trials, study)}
        seen: set[int] = set()  # every member a selection of an earlier generation considered
        for earlier in range(1, generation):
            seen.update(_record(records, earlier)["pool"])
        fresh = [
            n
            for n, m in sorted(members.items())
            if n not in seen and self._generation_or_before(m) < generation
        ]
        survivors = sorted(n for n in _record(records, generation - 1)["parents"] if n in members)
        numbers = fresh + survivors  # NSGA-II's order: the new population, then the parents
        record = records.get(generation)
        if record is not None and record.get("pool") == sorted(numbers):
            return [members[n] for n in sorted(record["parents"])]
        parents = _optuna.nsga2_select(self, study, [members[n] for n in numbers])
        study_record.set_selection(
            generation,
            {
                "pool": sorted(numbers),
                "parents": sorted(p.number for p in parents),
                "computed_at": started.isoformat(),
                "trial": by,
            },
        )
        # as Optuna's GA base: in the order chosen when chosen, in trial order when read back
        return parents

    def get_trial_generation(self, study: Study, trial: FrozenTrial) -> int:
        """``trial``'s generation, assigned now (under the study's lock) if it has none."""
        with study_lock(study):
            return self._assign(study, trial, self._trials(study))

    def get_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        """The finished members of ``generation``."""
        members = self._members(self._trials(study), study)
        return [m for m in members if self._generation(m) == generation]

    def select_parent(self, study: Study, generation: int) -> list[FrozenTrial]:
        """The same as :meth:`get_parent_population` (Optuna's base class calls this one)."""
        return self.get_parent_population(study, generation)

    def get_parent_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        """The parents of ``generation`` (none for generation 0), as members."""
        with study_lock(study):
            started = datetime.now()
            return self._select(study, generation, self._trials(study), started, None)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        with study_lock(study):  # every trial joins one generation, under the study's lock
            started = datetime.now()
            trials = self._trials(study)
            generation = self._assign(study, trial, trials)
            parents = self._select(study, generation, trials, started, trial.number)
        if not search_space:
            return {}
        parents = [
            p
            for p in parents
            if search_space.keys() <= p.params.keys()  # a candidate that failed to build
        ]
        if len(parents) < 2:
            return {}
        return _optuna.nsga2_child(self, study, search_space, parents)
