"""The one place that opens a search study: settings, space, data, study, slots, presets.

``run_search`` (one worker) and ``run_workers`` (``--workers K``) both call
:func:`open_search`, which

1. resolves the effective settings against the study's record (flag > study file > record >
   default; an explicit conflict with a pinned setting is refused in one line);
2. loads and checks the space and the data before the study is touched, and checks the
   proxy's image counts against the data (:func:`nas.search.fit.fit_to_data`: a count the
   data cannot meet is refused if given or recorded, reduced with one line if a default);
3. under the database's set-up lock, once per start: opens the storage, creates the study
   or loads it (checking its objectives and proxy protocol, and resolving again in case a
   worker started at the same instant recorded it first), records its settings, and creates
   the training-slot table; a study created on data without a test split gets one warning;
4. fails the trials of dead workers (their retries are queued) and queues the presets that
   fit the limits when asked.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.storages import RDBStorage

from nas.budget import Budget
from nas.data import ImageData, load_dataset
from nas.errors import NasError, StorageError
from nas.presets import PRESETS, preset
from nas.search.fit import fit_to_data
from nas.search.samplers import make_sampler
from nas.search.settings import SearchSettings
from nas.search.slots import TrainingSlots
from nas.settings import Resolved
from nas.space import SearchSpace, load_space
from nas.study import record as rec
from nas.study.address import StudyAddress
from nas.study.cleanup import fail_stale
from nas.study.protocol import SettingsSource, write_record
from nas.study.storage import with_retry, worker_id

#: The study user attribute that records a search's settings.
RECORD_KEY = rec.SEARCH_SETTINGS

#: Metric names shown by optuna-dashboard, per objective.
METRIC_NAMES = {"accuracy": "val_accuracy", "params": "params", "flops": "flops"}

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
    a field that differs from its default counts as given, one at its default as not given
    (so a default image count the data cannot meet is reduced, as on the command line)."""
    defaults = SearchSettings()
    flags = {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if getattr(settings, f.name) != getattr(defaults, f.name)
    }
    return SettingsSource(SearchSettings, RECORD_KEY, flags=flags)


def source_address(source: SettingsSource) -> StudyAddress:
    """Where the study a command line names lives: ``--storage`` and ``--study``, or the name
    derived from the space, data set and limit given (or their defaults), read without the
    record (which lives at the address) and without checks across settings."""
    defaults = SearchSettings()

    def given(name: str) -> Any:
        return source.flags.get(name, source.file.get(name, getattr(defaults, name)))

    names = ("storage", "study", "space", "dataset", "param_limit")
    return address_of(defaults.replace(**{n: given(n) for n in names}))


def _data_of(s: SearchSettings) -> tuple[Any, ...]:
    """What ``prepare`` loads: a change in any of these needs it again."""
    return (s.space, s.dataset, s.data_dir, s.param_limit, s.flops_limit)


def address_of(settings: SearchSettings) -> StudyAddress:
    """Where the study of ``settings`` lives."""
    return StudyAddress.of(settings.storage, settings.study_name)


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
        queued: the presets queued by this start.
    """

    study: optuna.Study
    address: StudyAddress
    resolved: Resolved
    space: SearchSpace
    data: ImageData
    slots: TrainingSlots
    queued: list[str] = field(default_factory=list)

    @property
    def settings(self) -> SearchSettings:
        settings: SearchSettings = self.resolved.settings
        return settings

    @property
    def data_seed(self) -> int:
        """The study's seed: one data order for every trial (paired comparisons)."""
        return self.settings.seed


def prepare(settings: SearchSettings) -> tuple[SearchSpace, ImageData]:
    """Load and check the space and the data before touching the study database."""
    space = load_space(settings.space)
    data = load_dataset(settings.dataset, settings.data_dir)
    if len(data.train_y) < 10:
        raise NasError(f"{len(data.train_y)} training images are too few to search on")
    Budget(settings.param_limit, settings.flops_limit).check_reachable(space, data)
    return space, data


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
    worker: int = 0,
    enqueue: bool = True,
) -> SearchStudy:
    """Open (creating if needed) the study ``source`` describes; see the module doc.

    Args:
        worker: this worker's index (its sampler seed).
        enqueue: queue the presets if the settings ask for it (a ``--workers`` child does
            not: its parent did).

    Raises:
        NasError: for bad or conflicting settings, missing data, an unreachable database.
    """
    address = source_address(source)
    peeked = source.peek(address)
    space, data = prepare(peeked.settings)
    fitted = fit_to_data(peeked, len(data.train_y), f"study {address.name!r}")
    resolved = fitted.resolved
    s: SearchSettings = resolved.settings
    with address.locked_storage(
        grace_period=s.grace_period, retry_seconds=s.db_retry, on_retry=say
    ) as storage:
        study, now, created = _create_or_load(source, address, storage, resolved, data)
        slots = TrainingSlots(storage.engine, address.name, now.settings.trials, s.grace_period)
    settings: SearchSettings = now.settings
    if _data_of(settings) != _data_of(s):  # recorded by a worker that started meanwhile
        space, data = prepare(settings)
    for name, (before, given) in now.replaced.items():
        say(f"--{name.replace('_', '-')}: {before} -> {given}, recorded for later runs")
    for note in fitted.notes:  # once the study holds the reduced values (a refusal says less)
        say(note)
    if created and not data.has_test:
        say(NO_TEST_WARNING.format(source=data.source))
    fail_stale(study)
    existing = len(study.get_trials(deepcopy=False))
    seed = sampler_seed(settings, address, worker)
    if existing:  # a resumed run must not replay the first run's random start-up
        seed += 104_729 * existing
    study.sampler = make_sampler(settings.sampler, seed, settings.trials)
    opened = SearchStudy(study, address, now, space, data, with_retry(slots, storage))
    if enqueue and settings.enqueue_presets:
        budget = Budget(settings.param_limit, settings.flops_limit)
        opened.queued = enqueue_presets(study, space, budget, data)
    return opened


def _create_or_load(
    source: SettingsSource,
    address: StudyAddress,
    storage: RDBStorage,
    resolved: Resolved,
    data: ImageData,
) -> tuple[optuna.Study, Resolved, bool]:
    """Under the set-up lock: load the study and resolve against its record (fitted to
    ``data``), or create it with ``resolved``; the flag says whether it was created."""
    s: SearchSettings = resolved.settings
    directions: list[Literal["minimize", "maximize"]] = ["maximize"]
    directions += ["minimize"] * (len(s.objectives) - 1)
    names = [METRIC_NAMES[o] for o in s.objectives]
    try:
        study = optuna.load_study(study_name=address.name, storage=storage)
    except KeyError:
        study = optuna.create_study(study_name=address.name, storage=storage, directions=directions)
        study.set_metric_names(names)
        write_record(study, RECORD_KEY, resolved, extra={"proxy_protocol": PROXY_PROTOCOL})
        return study, resolved, True
    record = study.user_attrs.get(RECORD_KEY)
    # a record without a protocol is from before it was versioned: protocol 1
    if isinstance(record, dict) and record.get("proxy_protocol", 1) != PROXY_PROTOCOL:
        raise NasError(
            f"study {address.name!r} was scored by an earlier version of nas (another "
            "normalisation and data order), so new trials would not be comparable with its "
            "old ones; start a new --study"
        )
    now = source.resolve(record if isinstance(record, dict) else None, address.name)
    now = fit_to_data(now, len(data.train_y), f"study {address.name!r}").resolved
    s = now.settings
    want = [METRIC_NAMES[o] for o in s.objectives]
    have = study.metric_names or []
    want_directions = ["maximize"] + ["minimize"] * (len(s.objectives) - 1)
    if [d.name.lower() for d in study.directions] != want_directions or (have and have != want):
        raise StorageError(
            f"study {address.name!r} exists with objectives {','.join(have) or '?'}, not "
            f"{','.join(want)}; choose another --study"
        )
    write_record(study, RECORD_KEY, now)
    return study, now, False


def enqueue_presets(
    study: optuna.Study, space: SearchSpace, budget: Budget, data: ImageData
) -> list[str]:
    """Queue the presets that lie in the space and fit the budget (both limits); returns
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
        study.enqueue_trial(params, user_attrs={"preset": name}, skip_if_exists=True)
        queued.append(name)
    return queued
