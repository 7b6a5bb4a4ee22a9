"""The one place that opens a search study: settings, space, data, study, slots, presets.

A search run from Python (:class:`nas.Search`), ``nas search`` and ``nas search --workers K``
all call :func:`open_search`, which

1. resolves the effective settings once, against the study's record as it is now (flag >
   study file > record > default; an explicit conflict with a pinned setting is refused in
   one line), and fits the proxy's image counts to the data once
   (:meth:`nas.settings.Resolved.fit`);
2. loads and checks the space, the data and the device before the database is touched, so a
   refused run leaves nothing behind;
3. under the database's set-up lock, once per start: opens the storage, creates the study or
   loads it (checking its objectives; only if a worker started at the same instant recorded
   it first are the settings resolved again, against that record, and the lock taken again),
   records its settings, and creates the training-slot table; a study created on data
   without a test split gets one warning;
4. fails the trials of dead workers (their retries are queued) and queues the presets that
   fit the limits when asked.

:func:`new_study` builds a search's Optuna study outside a database, for the benchmarks
that run the same loop on other evaluators; both it and :func:`open_search` create studies
through :func:`nas.study.address.create_study`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from nas.budget import Budget
from nas.data import ImageData, load_dataset
from nas.data.datasets import DATA_KEY, FAKE_WARNING, check_same_data
from nas.data.splits import split_room
from nas.errors import NasError
from nas.hardware.context import HardwareContext, study_context
from nas.objectives import hardware, unknown_objectives
from nas.presets import PRESETS, preset
from nas.search.settings import SearchSettings
from nas.search.slots import TrainingSlots
from nas.settings import (
    GIVEN,
    LEGACY,
    PINNED,
    PYTHON,
    RECORDED,
    Resolved,
    SettingsSource,
    declared,
    given_in_python,
    shown,
)
from nas.space import SearchSpace, load_space
from nas.study import record as rec
from nas.study.address import StudyAddress, create_study, load_or_create
from nas.study.cleanup import fail_stale, retry_interrupted
from nas.study.samplers import make_sampler
from nas.study.storage import with_retry, worker_id

#: The study user attribute that records a search's settings.
RECORD_KEY = rec.SEARCH_SETTINGS

#: Version of how proxy scores are computed (normalisation, pairing, learning-rate rule).
#: Studies scored by another version are not continued: their trials are not comparable.
PROXY_PROTOCOL = 2

Say = Callable[[str], None]

#: Said once, when a study is created on a data set without a test split.
NO_TEST_WARNING = (
    "warning: {source} has no test split (DIR/test/<class>/* or DIR/val/<class>/*): the "
    "search does not need one, but nas train-winners scores the winners on it and refuses "
    "to start without it"
)


def search_source(settings: SearchSettings) -> SettingsSource:
    """Settings built in Python (tests, benchmarks), read as a command line would give them:
    a setting that differs from its default counts as given, one at its default as not given
    (so a default image count the data cannot meet is reduced, as on the command line)."""
    return SettingsSource(
        SearchSettings, RECORD_KEY, flags=given_in_python(settings), given_as=PYTHON
    )


def source_address(source: SettingsSource) -> StudyAddress:
    """Where the study a command line names lives: ``--storage`` and ``--study``, or the name
    derived from the space, data set and limit given (or their defaults), read without the
    record (which lives at the address) and without checks across settings."""
    defaults = SearchSettings()

    def given(name: str) -> Any:
        return source.flags.get(name, source.file.get(name, getattr(defaults, name, None)))

    limits = {**defaults.limits}
    limit = given("param_limit")
    if isinstance(limit, int | float) and math.isfinite(limit) and limit > 0:
        limits["params"] = limit  # another value is refused when resolved, named as given
    named = SearchSettings(
        storage=given("storage"),
        study=given("study"),
        space=given("space"),
        dataset=given("dataset"),
        limits=limits,
    )
    return address_of(named)


def address_of(settings: SearchSettings) -> StudyAddress:
    """Where the study of ``settings`` lives."""
    return StudyAddress.of(settings.storage, settings.study_name)


def new_study(
    settings: SearchSettings,
    *,
    storage: str | optuna.storages.BaseStorage | None = None,
    name: str | None = None,
) -> optuna.Study:
    """A new Optuna study for ``settings``' objectives: accuracy maximised, the others
    minimised, named for optuna-dashboard by :attr:`nas.objectives.Metric.dashboard`."""
    return create_study(storage, name, settings.objectives)


@dataclass
class SearchStudy:
    """An opened search study and what its trials share.

    Attributes:
        study: the Optuna study (sampler set for this worker).
        address: where it lives.
        resolved: the effective settings, with the origin of each value.
        space: the search space.
        data: the data set.
        slots: the training slots (``--trials`` exactly, over every worker).
        hardware: where latency and memory are measured, checked against the study's record
            (None: the study measures neither).
        queued: the presets queued by this start.
        start_number: this run's number among the study's starts (0 for the first): two
            workers started at one instant, on one machine, with one ``--seed``, sample
            different candidates.
        failed_at_start: the trials of dead workers this start failed (their retries
            queued): their slots go at once.
    """

    study: optuna.Study
    address: StudyAddress
    resolved: Resolved
    space: SearchSpace
    data: ImageData
    slots: TrainingSlots
    hardware: HardwareContext | None = None
    queued: list[str] = field(default_factory=list)
    start_number: int = 0
    failed_at_start: list[int] = field(default_factory=list)

    @property
    def settings(self) -> SearchSettings:
        settings: SearchSettings = self.resolved.settings
        return settings

    def start(self, enqueue: bool) -> None:
        """Fail the trials of dead workers (their retries are queued), give this worker its
        sampler, and queue the presets that fit the limits if asked (``enqueue``)."""
        s, study = self.settings, self.study
        self.failed_at_start = fail_stale(study)
        existing = len(study.get_trials(deepcopy=False))
        seed = sampler_seed(s, self.address, s.worker_index)
        if existing:  # a resumed run must not replay the first run's random start-up
            seed += 104_729 * existing
        seed += 7_919_993 * self.start_number  # nor a worker started beside another
        seed %= 2**31
        study.sampler = make_sampler(s.sampler, seed, s.trials, len(s.objectives))
        if enqueue and s.enqueue_presets:
            self.queued = enqueue_presets(study, self.space, Budget(s.limits), self.data)


@dataclass(frozen=True)
class _Prepared:
    """Settings resolved and fitted against one record, with the space and data they load,
    what the study records of them, and what a start says of them once the study holds them
    (:attr:`said`; ``fitted``: the defaults reduced to the data)."""

    record: Mapping[str, Any] | None
    resolved: Resolved
    space: SearchSpace
    data: ImageData
    fitted: list[str]
    to_record: dict[str, Any]
    held: dict[str, Any]  # what the data holds (:func:`nas.data.datasets.data_record`)

    @property
    def settings(self) -> SearchSettings:
        settings: SearchSettings = self.resolved.settings
        return settings

    @property
    def said(self) -> list[str]:
        """What a start says once the study holds these settings: kept settings given anew,
        defaults reduced to the data, fake data, a data folder read from a new place, and
        early stopping that never acts."""
        r, s = self.resolved, self.settings
        notes = [
            f"{r.names.get(name, name)}: {shown(before)} -> {shown(given)}, recorded for later runs"
            for name, (before, given) in r.replaced.items()
        ]
        notes += self.fitted + ([FAKE_WARNING] if s.dataset == "fake" else [])
        notes += [  # taken only where the recorded folder is gone (Setting.relocatable)
            f"note: the study's folder {first} is not on this machine; this run reads the "
            f"same images from {here} (the record keeps the first)"
            for first, here in r.moved.values()
        ]
        if self.record is not None:  # a study from an earlier version lacks a pinned one
            notes += [
                f"note: the study now keeps {r.names.get(d.name, d.name)} "
                f"{shown(d.value(s))} (it recorded none); later runs keep it too"
                for d in declared(SearchSettings)
                if d.setting.kind == PINNED
                and d.name not in self.record
                and r.origins.get(d.name) not in (RECORDED, LEGACY)
            ]
        never = s.early_stopping != "off" and s.min_epochs >= s.proxy_epochs
        if never and r.origins.get("min_epochs") in GIVEN:  # given, and it does nothing
            notes.append(
                f"note: early stopping never acts: {r.names.get('min_epochs', 'min_epochs')} "
                f"{s.min_epochs} (its first rung) is not below "
                f"{r.names.get('proxy_epochs', 'proxy_epochs')} {s.proxy_epochs}"
            )
        measured = {m.name for m in hardware()} & {*s.objectives, *s.limits}
        if not measured and r.origins.get("latency_batch") in GIVEN:  # given, does nothing
            notes.append(
                f"note: {r.names.get('latency_batch', 'latency_batch')} {s.latency_batch} does "
                "nothing: the study measures no latency or memory (no such objective or limit)"
            )
        return notes


def prepare(
    source: SettingsSource,
    address: StudyAddress,
    record: Any,
    before: _Prepared | None = None,
    check: Callable[[SearchSettings], None] | None = None,
) -> _Prepared:
    """Resolve ``source`` against ``record`` (None: a new study) and fit it to the data; the
    space and data are loaded and checked (reused from ``before`` when they are the same),
    then the effective settings are given to ``check`` (see :func:`open_search`).

    Raises:
        NasError: for bad or conflicting settings, missing data, a study scored by another
            proxy protocol.
    """
    record = record if isinstance(record, dict) else None
    # a record without a protocol is from before it was versioned: protocol 1
    if record is not None and record.get("proxy_protocol", 1) != PROXY_PROTOCOL:
        raise NasError(
            f"study {address.name!r} was scored by an earlier version of nas (another "
            "normalisation and data order), so new trials would not be comparable with its "
            "old ones; start a new --study"
        )
    if record is not None and isinstance(record.get("objectives"), list):
        unknown_objectives(record["objectives"], address.name)  # a plugin not installed here
    resolved = source.resolve(record, address.name)
    s: SearchSettings = resolved.settings
    same = before is not None and _data_of(before.settings) == _data_of(s)
    if before is not None and same:
        space, data = before.space, before.data
    else:  # loaded and checked before the study database is touched
        space = load_space(s.space, recorded=record is not None)
        try:
            data = load_dataset(s.dataset, s.data_dir)
        except NasError as exc:  # the study's own folder gone: say how to give its place
            if resolved.origins.get("data_dir") != RECORDED or Path(s.data_dir or "").exists():
                raise
            flag = resolved.names.get("data_dir", "--data-dir")
            raise NasError(
                f"{exc}: the study recorded that folder; if its images moved (or this machine "
                f"mounts them elsewhere), give their place with {flag} DIR"
            ) from None
    held = check_same_data(record.get(DATA_KEY) if record else None, data, address.name)
    if not same:
        Budget(s.limits).check_reachable(space, data, names=resolved.names)
    room = split_room(len(data.train_y), s.val_fraction)
    fitted, notes = resolved.fit(room)
    notes += [f"warning: {d} (kept: the study searched this space)" for d in space.doubts]
    if check is not None:
        check(fitted.settings)
    return _Prepared(record, fitted, space, data, notes, fitted.to_record(), held)


def _data_of(s: SearchSettings) -> tuple[Any, ...]:
    """What ``prepare`` loads: a change in any of these needs it again."""
    return (s.space, s.dataset, s.data_dir, tuple(sorted(s.limits.items())))


def sampler_seed(settings: SearchSettings, address: StudyAddress, worker: int) -> int:
    """The sampler seed of this worker: ``--seed`` and the worker index, plus host and pid
    on a shared (non-SQLite) database, where workers on other machines may carry the same
    index and would otherwise propose the same start-up candidates."""
    seed = settings.seed * 7919 + worker
    if address.shared:
        seed ^= zlib.crc32(worker_id().encode())
    return seed % 2**31


def open_search(
    source: SettingsSource,
    *,
    say: Say,
    enqueue: bool = True,
    check: Callable[[SearchSettings], None] | None = None,
) -> SearchStudy:
    """Open (creating if needed) the study ``source`` describes; see the module doc.

    Args:
        enqueue: queue the presets if the settings ask for it (a ``--workers`` child does
            not: its parent did).
        check: called with the effective settings before the database is touched (e.g. the
            device a run needs), so that a refused run leaves nothing behind.

    Raises:
        NasError: for bad or conflicting settings, missing data, an unreachable database.
    """
    address = source_address(source)
    record, before = address.peek_attr(RECORD_KEY), None
    while True:  # again only if a worker started meanwhile recorded the study first
        prepared = prepare(source, address, record, before, check)
        s, before = prepared.settings, prepared
        with address.locked_storage(
            grace_period=s.grace_period, retry_seconds=s.db_retry, on_retry=say
        ) as storage:
            study, created, record = load_or_create(storage, address.name, s.objectives, RECORD_KEY)
            if not created and record != prepared.record:
                storage.engine.dispose()
                continue
            hardware = study_context(study, s)
            rec.StudyRecord(study).record_settings(
                RECORD_KEY,
                prepared.to_record,
                prepared.resolved.replaced,
                extra={"proxy_protocol": PROXY_PROTOCOL, DATA_KEY: prepared.held},
            )
            retried = retry_interrupted(study) if enqueue else []
            start_number = rec.StudyRecord(study).count_start()
            slots = TrainingSlots(storage.engine, address.name, s.trials, s.grace_period)
            break
    opened = SearchStudy(
        study,
        address,
        prepared.resolved,
        prepared.space,
        prepared.data,
        with_retry(slots, storage),
        hardware,
        start_number=start_number,
    )
    # what this start changed, once the study holds it (a refusal says less)
    for note in prepared.said:
        say(note)
    for interrupted, retry in retried:
        say(f"trial {interrupted} was interrupted; it is retried first as trial {retry}")
    if created and not prepared.data.has_test:
        say(NO_TEST_WARNING.format(source=prepared.data.source))
    opened.start(enqueue)
    return opened


def enqueue_presets(
    study: optuna.Study, space: SearchSpace, budget: Budget, data: ImageData
) -> list[str]:
    """Queue the presets that lie in the space and fit the budget (every limit); returns
    their names."""
    queued = []
    for name in PRESETS:
        cfg = preset(
            name,
            in_channels=data.in_channels,
            input_size=data.input_size,
            num_classes=data.num_classes,
        )
        try:
            params = space.params_for(cfg)
        except NasError:
            continue
        if not budget.check(cfg).fits:
            continue
        rec.enqueue(study, params, name)
        queued.append(name)
    return queued
