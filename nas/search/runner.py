"""The search loop: open the study, then sample and train until ``--trials`` are trained.

Re-running the same command continues the same study: finished trials are never redone and
``--trials`` is the study-wide number of trained trials (rejected candidates do not count).
Ctrl-C fails the running trial with its reason and returns normally, so the summary prints.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import sys
import time
import warnings
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from nas.counting import count
from nas.data import ImageData, load_dataset
from nas.errors import ConfigError, NasError, StorageError
from nas.presets import PRESETS, preset
from nas.proxy.context import proxy_context
from nas.search.early_stop import SuccessiveHalving
from nas.search.events import SearchMonitor
from nas.search.objective import Objective
from nas.search.samplers import make_sampler
from nas.search.settings import SearchSettings
from nas.search.slots import TrainingSlots, worker_id
from nas.search.stats import StudyStats, study_stats
from nas.search.storage import exclusive, open_storage, rdb_storage, safe_url, with_retry
from nas.space import SearchSpace, load_space, resolve_space_path
from nas.training import TrainingFailed, resolve_device
from nas.training.recipe import DEFAULT_PROXY_RECIPE
from nas.units import human

#: Metric names shown by optuna-dashboard, per objective.
METRIC_NAMES = {"accuracy": "val_accuracy", "params": "params", "flops": "flops"}
MAX_REJECTIONS_IN_A_ROW = 1000


@dataclass
class SearchOutcome:
    """How a search ended."""

    study: optuna.Study
    stats: StudyStats
    seconds: float
    stop_reason: str
    interrupted: bool = False
    trained_now: int = 0


class _MinimalTrial:
    """A stand-in trial that answers every suggestion with its cheapest value, except the
    categorical ones named in ``choices`` (used to find the space's smallest candidate)."""

    def __init__(self, choices: dict[str, Any]) -> None:
        self.choices = choices

    def suggest_categorical(self, name: str, options: list[Any]) -> Any:
        if name in self.choices:
            return self.choices[name]
        numeric = [o for o in options if isinstance(o, int | float) and not isinstance(o, bool)]
        if name == "reduction" and numeric:
            return max(numeric)
        return min(numeric) if len(numeric) == len(options) else options[0]

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return high if name == "reduction" else low

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return low


def smallest_candidate(
    space: SearchSpace, data: ImageData, *, flops: bool = False
) -> tuple[int, str]:
    """Parameters (``flops``: FLOPs) and summary of the cheapest candidate of ``space``
    (numeric dimensions at their cheapest, every combination of block, shortcut, attention
    type and placement)."""
    dims = {
        "block": space.backbone["block"].values(),
        "shortcut": space.backbone["shortcut"].values(),
        "attention": space.attention["type"].values(),
        "placement": space.attention["placement"].values(),
    }
    best: tuple[int, str] | None = None
    for combo in itertools.product(*dims.values()):
        trial = _MinimalTrial(dict(zip(dims, combo, strict=True)))
        try:
            arch = space.suggest(
                trial,  # type: ignore[arg-type]
                in_channels=data.in_channels,
                input_size=data.input_size,
                num_classes=data.num_classes,
            )
        except ConfigError:
            continue
        counts = count(arch, flops=flops)
        cost = counts.flops if flops and counts.flops is not None else counts.params
        if best is None or cost < best[0]:
            best = (cost, arch.summary())
    if best is None:
        raise NasError(f"no candidate of space {space.name!r} can be built")
    return best


def fail_stale(study: optuna.Study) -> None:
    """Fail (and retry once) the trials whose worker stopped sending heartbeats."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def sampler_seed_for(settings: SearchSettings, worker: int) -> int:
    """The sampler seed of this worker: ``--seed`` and the worker index, plus host and pid on
    a shared (non-SQLite) database, where workers on other machines may carry the same index
    and would otherwise propose the same start-up candidates."""
    seed = settings.seed * 7919 + worker
    if make_url(settings.storage_url).get_backend_name() != "sqlite":
        seed ^= zlib.crc32(worker_id().encode())
    return seed % 2**31


#: Version of how proxy scores are computed (normalisation, pairing, learning-rate rule).
#: Studies scored by another version are not continued: their trials are not comparable.
PROXY_PROTOCOL = 2

#: Settings a resumed study must keep: changing them would mix incomparable trials.
PINNED = (
    "space_sha1",
    "dataset",
    "data_dir",
    "param_limit",
    "flops_limit",
    "objectives",
    "proxy_epochs",
    "proxy_subset",
    "proxy_val",
    "proxy_batch_size",
    "proxy_lr",
    "proxy_recipe",
    "val_fraction",
)

#: What a study recorded before a pinned setting existed had that setting's old value.
LEGACY_VALUES = {"proxy_recipe": DEFAULT_PROXY_RECIPE, "flops_limit": None}


def recorded_settings(settings: SearchSettings) -> dict[str, Any]:
    """What a study records about how it was searched (``nas_settings``)."""
    data = {
        k: v
        for k, v in settings.to_dict().items()
        if k not in ("quiet", "storage", "workers", "worker_index")
    }
    data["objectives"] = list(settings.objectives)
    if settings.data_dir is not None:
        data["data_dir"] = str(Path(settings.data_dir).expanduser().resolve())
    data["space_sha1"] = hashlib.sha1(resolve_space_path(settings.space).read_bytes()).hexdigest()
    data["proxy_protocol"] = PROXY_PROTOCOL
    return data


def study_data_seed(study: optuna.Study, settings: SearchSettings) -> int:
    """The data seed of every trial of ``study``: the ``--seed`` it was created with, so that
    all its trials, from every worker and every resumed run, are trained on identical batches
    in identical order (paired comparisons)."""
    recorded = study.user_attrs.get("nas_settings", {}).get("seed")
    return int(recorded) if isinstance(recorded, int) else settings.seed


def check_same_settings(study: optuna.Study, settings: SearchSettings) -> None:
    """Refuse to continue a study with settings that make its trials incomparable."""
    before = study.user_attrs.get("nas_settings", {})
    now = recorded_settings(settings)
    if before and before.get("proxy_protocol") != PROXY_PROTOCOL:
        raise NasError(
            f"study {study.study_name!r} was scored by an earlier version of nas (another "
            "normalisation and data order), so new trials would not be comparable with its "
            "old ones; start a new --study"
        )
    if before:
        before = {**LEGACY_VALUES, **before}
    changed = [k for k in PINNED if k in before and before[k] != now[k]]
    if changed:
        what = ", ".join(
            "the space file's content" if k == "space_sha1" else f"{k} {before[k]!r} -> {now[k]!r}"
            for k in changed
        )
        raise NasError(
            f"study {study.study_name!r} was searched with other settings ({what}); "
            "continue it with the same ones, or choose another --study"
        )


def make_stopper(settings: SearchSettings) -> SuccessiveHalving | None:
    """The early stopper ``settings`` ask for (None: ``--early-stopping off``); its cost is the
    study's second objective."""
    if settings.early_stopping == "off":
        return None
    cost = settings.objectives[1] if len(settings.objectives) > 1 else None
    return SuccessiveHalving(
        eta=settings.eta, min_epochs=settings.min_epochs, cost_name=COST_NAMES.get(cost or "")
    )


#: How each second objective is named in a stopping reason.
COST_NAMES = {"params": "params", "flops": "FLOPs"}


def open_study(
    settings: SearchSettings,
    storage: optuna.storages.RDBStorage,
    sampler: optuna.samplers.BaseSampler,
) -> optuna.Study:
    """Create the study, or load it and check that it has the same objectives and settings.
    Under the database's set-up lock, so that workers started together create it once and
    each one checks the settings the first recorded."""
    with exclusive(storage.url):
        return _open_study(settings, storage, sampler)


def _open_study(
    settings: SearchSettings,
    storage: optuna.storages.RDBStorage,
    sampler: optuna.samplers.BaseSampler,
) -> optuna.Study:
    directions: list[Literal["minimize", "maximize"]] = ["maximize"]
    directions += ["minimize"] * (len(settings.objectives) - 1)
    names = [METRIC_NAMES[o] for o in settings.objectives]
    try:
        existing = optuna.load_study(
            study_name=settings.study_name, storage=storage, sampler=sampler
        )
    except KeyError:
        existing = None
    if existing is not None:
        have = existing.metric_names or []
        if [d.name.lower() for d in existing.directions] != directions or (have and have != names):
            raise StorageError(
                f"study {settings.study_name!r} exists with objectives "
                f"{','.join(have) or '?'}, not {','.join(names)}; choose another --study"
            )
        check_same_settings(existing, settings)
        return existing
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=storage,
        sampler=sampler,
        directions=directions,
        load_if_exists=True,
    )
    study.set_metric_names(names)
    study.set_user_attr("nas_settings", recorded_settings(settings))
    return study


def enqueue_presets(
    study: optuna.Study, space: SearchSpace, settings: SearchSettings, data: ImageData
) -> list[str]:
    """Queue the presets that fit the limit and lie in the space; returns their names."""
    queued = []
    for name in PRESETS:
        cfg = preset(
            name,
            in_channels=data.in_channels,
            input_size=data.input_size,
            num_classes=data.num_classes,
        )
        if count(cfg, flops=False).params > settings.param_limit:
            continue
        try:
            params = space.params_for(cfg)
        except NasError:
            continue
        study.enqueue_trial(params, user_attrs={"preset": name}, skip_if_exists=True)
        queued.append(name)
    return queued


def prepare(settings: SearchSettings) -> tuple[SearchSpace, ImageData]:
    """Load and check the space and the data before touching the study database."""
    space = load_space(settings.space)
    data = load_dataset(settings.dataset, settings.data_dir)
    if len(data.train_y) < 10:
        raise NasError(f"{len(data.train_y)} training images are too few to search on")
    smallest, summary = smallest_candidate(space, data)
    if smallest > settings.param_limit:
        raise NasError(
            f"the limit {human(settings.param_limit)} is below the smallest candidate of space "
            f"{space.name!r} ({human(smallest)} params: {summary}); raise --param-limit or "
            "use a smaller space"
        )
    if settings.flops_limit is not None:
        cheapest, summary = smallest_candidate(space, data, flops=True)
        if cheapest > settings.flops_limit:
            raise NasError(
                f"the FLOPs limit {human(settings.flops_limit)} is below the cheapest candidate "
                f"of space {space.name!r} ({human(cheapest)} FLOPs: {summary}); raise "
                "--flops-limit or use a smaller space"
            )
    return space, data


def run_search(
    settings: SearchSettings,
    monitor: SearchMonitor,
    *,
    worker: int = 0,
    log: Any = None,
    objective_cls: type[Objective] = Objective,
) -> SearchOutcome:
    """Run (or continue) the study described by ``settings`` until it has enough trained
    trials, the timeout passes, or the user interrupts.

    Raises:
        NasError: for bad settings, missing data or an unreachable database.
    """
    say = log or (lambda text: print(text, file=sys.stderr))
    space, data = prepare(settings)
    device = resolve_device(settings.device)
    storage = open_storage(
        settings.storage_url,
        grace_period=settings.grace_period,
        retry_seconds=settings.db_retry,
        on_retry=say,
    )
    started = time.perf_counter()
    sampler_seed = sampler_seed_for(settings, worker)
    study = open_study(
        settings, storage, make_sampler(settings.sampler, sampler_seed, settings.trials)
    )
    fail_stale(study)
    existing = len(study.get_trials(deepcopy=False))
    if existing:
        # Re-seed so that a resumed run does not replay the first run's random start-up.
        study.sampler = make_sampler(
            settings.sampler, sampler_seed + 104_729 * existing, settings.trials
        )
    if settings.enqueue_presets:
        queued = enqueue_presets(study, space, settings, data)
        if queued:
            say(f"queued presets that fit the limit: {', '.join(queued)}")
    ctx = proxy_context(settings.proxy, data, device, study_data_seed(study, settings))
    stopper = make_stopper(settings)
    objective = objective_cls(settings, space, ctx, monitor, stopper)
    say(
        f"study {settings.study_name!r} in {safe_url(settings.storage_url)}: "
        f"{len(ctx.split.train)} training / {len(ctx.split.val)} validation images on {device}"
    )
    trained_before = study_stats(study, front=False).trained
    with exclusive(settings.storage_url):  # its table is created once
        slots = TrainingSlots(
            rdb_storage(study).engine, study.study_name, settings.trials, settings.grace_period
        )
    slots = with_retry(slots, rdb_storage(study))
    state = _LoopState()
    objective.may_train = lambda trial: (
        state.reservation is not None and slots.bind(state.reservation, trial.number)
    )
    with monitor:
        try:
            while not state.stop_reason:
                _step(study, objective, settings, slots, monitor, state, started, say)
        except KeyboardInterrupt:
            state.interrupted = True
            state.stop_reason = "interrupted by the user (Ctrl-C)"
            fail_running(study, objective.started)
        finally:
            if state.reservation is not None:
                slots.release(state.reservation)
    stats = study_stats(study)
    return SearchOutcome(
        study,
        stats,
        time.perf_counter() - started,
        state.stop_reason,
        state.interrupted,
        stats.trained - trained_before,
    )


@dataclass
class _LoopState:
    """What the loop remembers between trials."""

    reservation: int | None = None
    failures: int = 0
    rejections: int = 0
    waiting_said: bool = False
    stop_reason: str = ""
    interrupted: bool = False
    last: list[FrozenTrial] = field(default_factory=list)
    stats: StudyStats | None = None
    stats_at: float = -math.inf


#: After a rejection (milliseconds of work) the loop goes on with the study statistics it
#: read at most this many seconds ago instead of reading every trial again.
STATS_EVERY = 5.0


def _study_stats(study: optuna.Study, state: _LoopState) -> StudyStats:
    """The study's statistics, read again unless the last trial was a rejection and they are
    fresh: a run of rejections costs no read of the whole study per candidate."""
    last_rejected = bool(state.last) and "rejected" in state.last[-1].user_attrs
    fresh = time.monotonic() - state.stats_at < STATS_EVERY
    if state.stats is not None and last_rejected and fresh:
        state.stats.rejected += 1
        return state.stats
    fail_stale(study)
    state.stats = study_stats(study, front=False)
    state.stats_at = time.monotonic()
    return state.stats


def _step(
    study: optuna.Study,
    objective: Objective,
    settings: SearchSettings,
    slots: TrainingSlots,
    monitor: SearchMonitor,
    state: _LoopState,
    started: float,
    say: Any,
) -> None:
    """One turn of the loop: clean up, decide whether to stop, wait, or run one trial."""
    stats = _study_stats(study, state)
    slots.free_failed(t.number for t in stats.trials if t.state == TrialState.FAIL)
    monitor.totals(
        stats.trained,
        settings.trials,
        stats.rejected,
        stats.stopped,
        stats.failed,
        stats.best_accuracy,
    )
    if stats.trained >= settings.trials:
        state.stop_reason = f"the study has {stats.trained} trained trials"
    elif settings.timeout and time.perf_counter() - started > settings.timeout:
        state.stop_reason = f"timeout of {settings.timeout:g}s reached"
    elif state.failures >= settings.max_failures:
        reason = state.last[-1].user_attrs.get("fail_reason", "?") if state.last else "?"
        state.stop_reason = f"{state.failures} trials failed in a row; the last one: {reason}"
    elif state.rejections >= MAX_REJECTIONS_IN_A_ROW:
        state.stop_reason = (
            f"{state.rejections} candidates in a row exceeded the limit; "
            "raise --param-limit or narrow the space"
        )
    if state.stop_reason:
        return
    if state.reservation is not None and not slots.refresh(state.reservation):
        state.reservation = None
    if state.reservation is None:
        state.reservation = slots.reserve()
    if state.reservation is None:  # every slot is held by a trial being trained elsewhere
        if not state.waiting_said:
            say(
                f"all {settings.trials} training slots are taken by trials running in other "
                "workers; waiting for them (a dead worker's trial is retried after the "
                f"{settings.grace_period}s grace period)"
            )
            state.waiting_said = True
        time.sleep(min(5.0, settings.grace_period / 4))
        return
    try:
        study.optimize(
            objective,
            n_trials=1,
            catch=(TrainingFailed, RuntimeError, ValueError),
            gc_after_trial=False,
            callbacks=[lambda s, t: state.last.append(t)],
        )
    except (ValueError, AssertionError):  # what Optuna raises for a trial finished elsewhere
        lost = failed_meanwhile(study, objective.started)
        if lost is None:
            raise
        say(
            f"trial {lost.number} finished here, but another worker had already failed it "
            f"because its heartbeats stopped for over {settings.grace_period}s (the database "
            "was away); its result is discarded and its retry trains it again"
        )
        slots.release(state.reservation)
        state.reservation = None
        return
    t = state.last[-1]
    state.failures = state.failures + 1 if t.state == TrialState.FAIL else 0
    state.rejections = state.rejections + 1 if "rejected" in t.user_attrs else 0
    if t.state == TrialState.FAIL:
        slots.release(state.reservation)
        state.reservation = None
    elif "rejected" not in t.user_attrs:  # trained (slot consumed) or lost the slot
        state.reservation = None


def failed_meanwhile(study: optuna.Study, started: Collection[int]) -> FrozenTrial | None:
    """The trial this process started last, if it is no longer RUNNING although this process
    never told its result: another worker failed it as stale while its heartbeats could not
    reach the database. Optuna then refuses the result ("Cannot tell a FAIL trial")."""
    if not started:
        return None
    storage = study._storage
    try:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, max(started))
        trial = storage.get_trial(trial_id)
    except KeyError:
        return None
    return trial if trial.state == TrialState.FAIL else None


def fail_running(study: optuna.Study, started: Collection[int]) -> None:
    """After Ctrl-C: none of the trials this process ``started`` may stay RUNNING."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in started:
            try:
                study._storage.set_trial_user_attr(
                    t._trial_id, "fail_reason", "interrupted by the user (Ctrl-C)"
                )
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except Exception:  # finished meanwhile
                pass
