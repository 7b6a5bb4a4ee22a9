"""A study's record: the one module that reads and writes trial and study attributes.

Every key a trial or a study carries is named here, once, and read through typed accessors:

* :class:`TrialRecord`: a finished (or running) trial as typed fields: its architecture, the
  value of each metric of :data:`nas.objectives.METRICS`, its learning curve, why it was
  rejected, stopped or failed, how it was sampled, what full training measured;
* :class:`TrialWriter`: what a trial being run records, one method per event (sampled,
  measured, rejected, an epoch, a rung, stopped, failed, finished);
* :class:`StudyRecord`: what a study records: its settings, objectives and limits, a
  fidelity panel, the proxy fidelity of its winners, the hashes of notes ``nas`` wrote;
* :func:`write_results`: results written onto a finished trial (``nas train-winners``, the
  retry of a dead worker's trial).

Nothing else in ``nas`` touches ``user_attrs`` or ``system_attrs`` (``tests/test_layers.py``
enforces it). Light at import: Optuna is imported by the functions that need it, so the
keys serve ``--help`` at no cost.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from nas.objectives import ACCURACY, METRICS, Metric, unknown_objectives

if TYPE_CHECKING:  # the keys are read by light modules (--help imports no Optuna)
    import optuna
    from optuna.trial import FrozenTrial, TrialState


# ------------------------------------------------------------------ keys of a search trial
ARCH = "arch"  #: the config dict nas.build_model takes (or a table benchmark's cell)
REJECTED = "rejected"  #: why it was rejected before training (over a limit, not buildable)
NOT_TRAINED = "not_trained"  #: sampled after the study had enough trained trials
TRAINING = "training"  #: admitted to training
SAMPLED_BY = "sampled_by"  #: startup, guided, enqueued or retry (see SAMPLED_BY_VALUES)
PRESET = "preset"  #: the preset an enqueued trial is
RETRY_OF = "retry_of"  #: the trial a retry repeats
RETRIED_AS = "retried_as"  #: the retry of a trial whose worker died
WORKER = "worker"  #: host:pid of the worker that ran it
DEVICE = "device"  #: where it trained
ZERO_COST = "zero_cost"  #: zero-cost scores of the untrained network
CURVE = "curve"  #: validation accuracy after each epoch
SECONDS = "seconds"  #: wall-clock seconds of the trial
IMAGES_PER_S = "images_per_s"  #: training throughput
RUNGS = "rungs"  #: early-stopping rungs it reached
PROMOTED = "promoted"  #: why it went on at its last rung
STOPPED_EARLY = "stopped_early"  #: why it was stopped early
STOPPED_AT_EPOCH = "stopped_at_epoch"  #: the rung it was stopped at
FAIL_REASON = "fail_reason"  #: why it failed
OBSERVATIONS = "observations"  #: every accuracy observed of it (re-evaluations)
# ------------------------------------------------------------------ added by train-winners
FULL_VAL_ACCURACY = "full_val_accuracy"
FULL_ACCURACY = "full_accuracy"  #: test accuracy (reported, never used to choose)
FULL_EPOCHS = "full_epochs"
FULL_CURVE = "full_curve"
FULL_VAL_IMAGES = "full_val_images"
FULL_SECONDS = "full_seconds"
FULL_RECIPE = "full_recipe"
FULL_DEVICE = "full_device"
CHECKPOINT = "checkpoint"
WEIGHTS = "weights"
#: the per-channel mean and std the weights' inputs are normalised with (images in [0, 1])
FULL_NORMALIZE = "full_normalize"
# ------------------------------------------------------------------ a fidelity job
CANDIDATE = "candidate"  #: the panel candidate a job trains
RUNG = "rung"  #: the rung label it trains at
TRAINING_FAILED = "training_failed"  #: failed in training (not retried)
# ------------------------------------------------------------------ Optuna's system attributes
RETRY_SOURCE = "failed_trial"  #: Optuna: the failed trial a retry repeats
FIXED_PARAMS = "fixed_params"  #: Optuna: the parameters an enqueued trial was given
# ------------------------------------------------------------------ study attributes
PROXY_FIDELITY = "proxy_fidelity"  #: Kendall's tau of proxy vs full accuracy (train-winners)
SEARCH_SETTINGS = "nas_settings"  #: a search study's recorded settings
FIDELITY_SETTINGS = "fidelity_settings"  #: a fidelity study's recorded settings
PANEL = "panel"  #: a fidelity study's panel (configs, counts, zero-cost scores)
PANEL_SCORES = "panel_zero_cost_version"  #: the zero-cost code version that scored the panel
NOTE_HASH = "nas:generated_note:"  #: + "study" or a trial id: the note nas last wrote
#: + a generation: NSGA-II's last parent selection of that generation, ``{"pool": [trial
#: numbers], "parents": [trial numbers], "computed_at": ISO time (local, as Optuna's trial
#: times), "trial": the trial whose sampling computed it}`` (a study system attribute).
SELECTION_KEY = "nas:nsga2:selection:"
#: How many runs started on a search study (a study system attribute): each takes the next
#: number, under the set-up lock, so workers started at one instant sample differently.
STARTS = "nas:starts"
#: Hardware measurements: + context key + ":" + architecture key -> {metric: value} (a study
#: system attribute; see :class:`nas.hardware.cache.StudyMeasurements`).
MEASURED_KEY = "nas:measured:"
#: The context of a study's hardware measurements (a study user attribute: device, its name,
#: threads, batch, precision, memory format, torch version).
HARDWARE = "hardware"
#: Every context the study was measured in, by its key (``--remeasure`` adds one).
HARDWARE_CONTEXTS = "hardware_contexts"
#: The key of the context a trial's latency and memory were measured in (a trial attribute).
MEASURED_IN = "measured_in"

#: How a trial's candidate was chosen.
SAMPLED_BY_VALUES = ("startup", "guided", "enqueued", "retry")


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _floats(value: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in value or ())


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value or ())


def _dict(value: Any) -> Any:
    return value if isinstance(value, dict) else None


T = TypeVar("T")


class Field(Generic[T]):
    """A typed field of a trial's record: the user attribute ``key``, read through
    ``convert`` (which turns what is stored, or None when absent, into the field's type)."""

    def __init__(self, key: str, convert: Callable[[Any], T], doc: str = "") -> None:
        self.key, self.convert = key, convert
        self.__doc__ = doc

    @overload
    def __get__(self, record: None, owner: type[Any]) -> Field[T]: ...

    @overload
    def __get__(self, record: TrialRecord, owner: type[Any]) -> T: ...

    def __get__(self, record: TrialRecord | None, owner: type[Any]) -> Field[T] | T:
        if record is None:
            return self
        return self.convert(record.trial.user_attrs.get(self.key))


class TrialRecord:
    """The typed view of a trial's attributes (None where a key is absent).

    Cheap: it reads the trial's attributes when a field is asked for, so the loop can wrap
    every trial of a study on every turn.
    """

    __slots__ = ("trial",)

    def __init__(self, trial: FrozenTrial) -> None:
        self.trial = trial

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        """Read ``trial``'s record."""
        return cls(trial)

    @classmethod
    def all(cls, trials: Iterable[FrozenTrial]) -> list[TrialRecord]:
        """The records of ``trials``, in their order."""
        return [cls(t) for t in trials]

    # -------------------------------------------------------------- identity and state
    @property
    def number(self) -> int:
        return self.trial.number

    @property
    def state(self) -> TrialState:
        return self.trial.state

    @property
    def attrs(self) -> dict[str, Any]:
        """Every user attribute, as stored (for display and JSON dumps)."""
        return dict(self.trial.user_attrs)

    # -------------------------------------------------------------- the candidate
    arch: Field[dict[str, Any] | None] = Field(ARCH, _dict, "the architecture's config")
    params: Field[int | None] = Field(METRICS["params"].field, _int)
    flops: Field[int | None] = Field(METRICS["flops"].field, _int)
    accuracy: Field[float | None] = Field(
        METRICS[ACCURACY].field,
        _float,
        "proxy validation accuracy (the last epoch's, or the mean of several observations)",
    )
    observations: Field[tuple[float, ...]] = Field(OBSERVATIONS, _floats)
    curve: Field[tuple[float, ...]] = Field(CURVE, _floats)
    zero_cost: Field[dict[str, float | None] | None] = Field(ZERO_COST, _dict)

    def value(self, metric: str | Metric) -> float | None:
        """The trial's value of ``metric`` (``params``, ``accuracy``, ...)."""
        m = METRICS[metric] if isinstance(metric, str) else metric
        return _float(self.trial.user_attrs.get(m.field))

    def values(self, metrics: Sequence[str]) -> list[float | None]:
        """The trial's values of ``metrics``, in order."""
        return [self.value(m) for m in metrics]

    # -------------------------------------------------------------- what happened to it
    seconds: Field[float | None] = Field(SECONDS, _float)
    images_per_s: Field[float | None] = Field(IMAGES_PER_S, _float)
    device: Field[str | None] = Field(DEVICE, _str)
    worker: Field[str | None] = Field(WORKER, _str)
    rejected: Field[str | None] = Field(REJECTED, _str, "why it was rejected before training")
    not_trained: Field[bool] = Field(NOT_TRAINED, lambda v: v is not None)
    stopped_early: Field[str | None] = Field(STOPPED_EARLY, _str)
    stopped_at_epoch: Field[int | None] = Field(STOPPED_AT_EPOCH, _int)
    rungs: Field[tuple[int, ...]] = Field(RUNGS, _ints)
    promoted: Field[str | None] = Field(PROMOTED, _str)
    fail_reason: Field[str | None] = Field(FAIL_REASON, _str)
    measured_in: Field[str | None] = Field(MEASURED_IN, _str, "key of its hardware context")
    retried_as: Field[int | None] = Field(RETRIED_AS, _int, "the trial that retried it")
    sampled_by: Field[str | None] = Field(
        SAMPLED_BY,
        lambda v: str(v) if v in SAMPLED_BY_VALUES else None,
        "how it was sampled, as recorded (see nas.study.stats.sampled_by)",
    )
    preset: Field[str | None] = Field(PRESET, _str)

    @property
    def retry_of(self) -> int | None:
        """The failed trial this one repeats (recorded, else Optuna's own mark)."""
        recorded = _int(self.trial.user_attrs.get(RETRY_OF))
        return recorded if recorded is not None else _int(self.system(RETRY_SOURCE))

    @property
    def enqueued(self) -> bool:
        """Queued with fixed parameters (a preset)."""
        return FIXED_PARAMS in self.trial.system_attrs

    def system(self, key: str) -> Any:
        """Optuna's system attribute ``key`` (a sampler's bookkeeping, read back through the
        key the sampler itself names)."""
        return self.trial.system_attrs.get(key)

    # -------------------------------------------------------------- full training
    full_val_accuracy: Field[float | None] = Field(
        FULL_VAL_ACCURACY, _float, "validation accuracy after full training (it chooses)"
    )
    full_accuracy: Field[float | None] = Field(
        FULL_ACCURACY, _float, "test accuracy after full training (reported, never chooses)"
    )
    full_epochs: Field[int | None] = Field(FULL_EPOCHS, _int)
    full_curve: Field[tuple[float, ...]] = Field(FULL_CURVE, _floats)
    full_recipe: Field[dict[str, Any] | None] = Field(
        FULL_RECIPE, _dict, "the full-training recipe (:meth:`nas.training.Recipe.to_dict`)"
    )
    checkpoint: Field[str | None] = Field(CHECKPOINT, _str)
    full_normalize: Field[dict[str, Any] | None] = Field(
        FULL_NORMALIZE, _dict, "``{mean, std}`` per channel that the weights' inputs need"
    )

    @property
    def weights(self) -> str | None:
        """Trained weights (EMA), else the last checkpoint, of full training."""
        attrs = self.trial.user_attrs
        return _str(attrs.get(WEIGHTS) or attrs.get(CHECKPOINT))

    # -------------------------------------------------------------- a fidelity job
    candidate: Field[int | None] = Field(CANDIDATE, _int)
    rung: Field[str | None] = Field(RUNG, _str)
    training_failed: Field[bool] = Field(TRAINING_FAILED, bool)

    @property
    def job(self) -> tuple[int, str] | None:
        """A fidelity job's (panel candidate, rung label); None for any other trial."""
        candidate, rung = self.candidate, self.rung
        return None if candidate is None or rung is None else (candidate, rung)

    # -------------------------------------------------------------- categories
    @property
    def is_complete(self) -> bool:
        return self.state.name == "COMPLETE"

    @property
    def is_rejected(self) -> bool:
        """Rejected before training (over a limit, or not buildable)."""
        return self.rejected is not None

    @property
    def is_stopped(self) -> bool:
        """Trained for some epochs, then stopped early as hopeless."""
        return self.state.name == "PRUNED" and self.stopped_early is not None

    @property
    def is_trained(self) -> bool:
        """Counts towards ``--trials``: trained to the end, or stopped early."""
        return self.is_complete or self.is_stopped

    def cost(self, key: str) -> int | None:
        """A metric's value as an integer count (``params`` or ``flops``)."""
        return _int(self.trial.user_attrs.get(METRICS[key].field))


class TrialWriter:
    """What a trial being run records, one method per event (see the module doc)."""

    def __init__(self, trial: optuna.trial.Trial) -> None:
        self.trial = trial

    @property
    def number(self) -> int:
        return self.trial.number

    def _set(self, key: str, value: Any) -> None:
        self.trial.set_user_attr(key, value)

    def record(self) -> TrialRecord:
        """The trial as stored now, system attributes included (read afresh)."""
        from nas.study import _optuna

        trial = _optuna.trial_by_number(self.trial.study, self.trial.number)
        assert trial is not None
        return TrialRecord(trial)

    def started(self, worker: str) -> None:
        self._set(WORKER, worker)

    def sampled(self, how: str, retry_of: int | None = None) -> None:
        self._set(SAMPLED_BY, how)
        if retry_of is not None:
            self._set(RETRY_OF, retry_of)

    def candidate(self, arch: Mapping[str, Any]) -> None:
        self._set(ARCH, dict(arch))

    def measured(self, values: Mapping[str, float], context: str | None = None) -> None:
        """Values of metrics measured before training, by metric name; ``context``: the key
        of the context hardware metrics among them were measured in."""
        for name, value in values.items():
            self._set(METRICS[name].field, value)
        if context is not None and any(METRICS[name].hardware for name in values):
            self._set(MEASURED_IN, context)

    def rejected(self, reason: str) -> None:
        self._set(REJECTED, reason)

    def not_trained(self, reason: str) -> None:
        self._set(NOT_TRAINED, reason)

    def training(self, device: str) -> None:
        """Admitted to training on ``device``; a retry starts its curve afresh."""
        self._set(TRAINING, True)
        self._set(CURVE, [])
        self._set(RUNGS, [])
        self._set(DEVICE, device)

    def zero_cost(self, scores: Mapping[str, float | None]) -> None:
        self._set(ZERO_COST, dict(scores))

    def epoch(self, curve: Sequence[float]) -> None:
        """The curve so far; its last point is the trial's accuracy."""
        self._set(CURVE, list(curve))
        self._set(METRICS[ACCURACY].field, curve[-1])

    def observed(self, observations: Sequence[float]) -> None:
        """Every accuracy observed of the candidate; their mean is its accuracy."""
        self._set(OBSERVATIONS, list(observations))
        self._set(METRICS[ACCURACY].field, sum(observations) / len(observations))

    def rung(self, rungs: Sequence[int], promoted: str | None = None) -> None:
        self._set(RUNGS, list(rungs))
        if promoted is not None:
            self._set(PROMOTED, promoted)

    def stopped(self, reason: str, at_epoch: int) -> None:
        self._set(STOPPED_AT_EPOCH, at_epoch)
        self._set(STOPPED_EARLY, reason)

    def finished(self, seconds: float, images_per_s: float | None = None) -> None:
        self._set(SECONDS, seconds)
        if images_per_s is not None:
            self._set(IMAGES_PER_S, images_per_s)

    def failed(self, reason: str, *, in_training: bool = False) -> None:
        self._set(FAIL_REASON, reason)
        if in_training:
            self._set(TRAINING_FAILED, True)

    def claim(self, candidate: int, rung: str) -> None:
        """A fidelity job: panel candidate ``candidate`` at rung ``rung``."""
        self._set(CANDIDATE, candidate)
        self._set(RUNG, rung)

    @property
    def claimed(self) -> tuple[int, str] | None:
        """The fidelity job this trial carries (a retry of a dead worker's job does)."""
        attrs = self.trial.user_attrs
        if CANDIDATE not in attrs or RUNG not in attrs:
            return None
        return int(attrs[CANDIDATE]), str(attrs[RUNG])

    def job_done(
        self, accuracy: float, curve: Sequence[float], seconds: float, worker: str
    ) -> None:
        self._set(METRICS[ACCURACY].field, accuracy)
        self._set(CURVE, list(curve))
        self._set(SECONDS, seconds)
        self._set(WORKER, worker)


def study_digest(study: optuna.Study) -> str:
    """A digest of what the study's trials record and what it records itself: it changes
    when a trial is added, finishes or is given results (``nas train-winners``), and when
    the study records something (the proxy fidelity); notes and attached figures (system
    attributes) leave it as it is."""
    import hashlib
    import json

    trials = [(t.number, t.state.name, t.user_attrs) for t in study.get_trials(deepcopy=False)]
    text = json.dumps([trials, study.user_attrs], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def set_trial_system(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """A sampler's bookkeeping on a running ``trial`` (it holds a frozen view only)."""
    from nas.study import _optuna

    _optuna.set_trial_system_attr(study, trial, key, value)


def enqueue(study: optuna.Study, params: Mapping[str, Any], preset: str) -> None:
    """Queue a trial with fixed parameters, recorded as ``preset`` (skipped if queued)."""
    study.enqueue_trial(dict(params), user_attrs={PRESET: preset}, skip_if_exists=True)


def enqueue_retry(study: optuna.Study, params: Mapping[str, Any], of: int) -> None:
    """Queue a trial with ``params`` that repeats trial ``of`` (it is classified ``retry``)."""
    study.enqueue_trial(dict(params), user_attrs={RETRY_OF: of})


def write_results(study: optuna.Study, trial: FrozenTrial, values: Mapping[str, Any]) -> None:
    """Write ``values`` (keys of this module) onto a *finished* trial, in one transaction.

    Raises:
        StorageError: when the database refuses.
    """
    from nas.errors import StorageError
    from nas.study import _optuna

    backend = _optuna.rdb_of(study)
    if backend is None:
        raise StorageError("results can only be recorded in an RDB study storage")
    try:
        _optuna.set_result_attrs(backend, _optuna.trial_id(trial), dict(values))
    except Exception as exc:
        raise StorageError(f"cannot write results of trial {trial.number}: {exc}") from None


def full_results(
    *,
    val_accuracy: float,
    test_accuracy: float,
    epochs: int,
    curve: Sequence[float],
    val_images: int,
    seconds: float,
    recipe: Mapping[str, Any],
    device: str,
    checkpoint: str,
    weights: str,
    normalize: Mapping[str, Sequence[float]],
) -> dict[str, Any]:
    """What full training records on a winner (for :func:`write_results`)."""
    return {
        FULL_VAL_ACCURACY: val_accuracy,
        FULL_ACCURACY: test_accuracy,
        FULL_EPOCHS: epochs,
        FULL_CURVE: list(curve),
        FULL_VAL_IMAGES: val_images,
        FULL_SECONDS: seconds,
        FULL_RECIPE: dict(recipe),
        FULL_DEVICE: device,
        CHECKPOINT: checkpoint,
        WEIGHTS: weights,
        FULL_NORMALIZE: {k: [float(v) for v in vs] for k, vs in normalize.items()},
    }


#: The keys :func:`full_results` writes.
FULL_RESULT_KEYS = (
    FULL_VAL_ACCURACY, FULL_ACCURACY, FULL_EPOCHS, FULL_CURVE, FULL_VAL_IMAGES, FULL_SECONDS,
    FULL_RECIPE, FULL_DEVICE, CHECKPOINT, WEIGHTS, FULL_NORMALIZE,
)  # fmt: skip


def no_results() -> dict[str, Any]:
    """What :func:`write_results` writes to forget a trial's full-training results: it
    reads as never fully trained then (its files are left where they are)."""
    return dict.fromkeys(FULL_RESULT_KEYS)


def fail_running(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """Record ``reason`` on a RUNNING trial this process can no longer finish through
    Optuna's API, and fail it."""
    from nas.study import _optuna

    _optuna.fail_trial(study, trial, {FAIL_REASON: reason})


def retry_results(reason: str, retry: int | None) -> dict[str, Any]:
    """What a dead worker's trial records when it is failed and retried."""
    return {FAIL_REASON: reason, RETRIED_AS: retry}


class StudyRecord:
    """What a study records (see the module doc)."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study

    def get(self, key: str) -> Any:
        return self.study.user_attrs.get(key)

    def set(self, key: str, value: Any) -> None:
        self.study.set_user_attr(key, value)

    def record_settings(
        self,
        key: str,
        now: Mapping[str, Any],
        replaced: Collection[str] = (),
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Record settings (``now``, as :meth:`nas.settings.Resolved.to_record` gives them)
        under ``key``: everything on a new study; on an existing one, the settings its record
        lacks (older versions recorded fewer) and the kept settings this run gave anew
        (``replaced``); ``extra`` (a protocol version, what the data holds) is recorded with
        a new study, and where an existing one lacks it. Call under the set-up lock, so that
        workers started together record once and every later worker reads the same values."""
        before = self.get(key)
        if not isinstance(before, dict):
            self.set(key, {**now, **(extra or {})})
            return
        update = {k: v for k, v in now.items() if k not in before or k in replaced}
        update |= {k: v for k, v in (extra or {}).items() if k not in before}
        if update:
            self.set(key, {**before, **update})

    @property
    def settings(self) -> dict[str, Any]:
        """A search study's recorded settings (empty: none)."""
        recorded = self.get(SEARCH_SETTINGS)
        return recorded if isinstance(recorded, dict) else {}

    @property
    def objectives(self) -> tuple[str, ...]:
        """The study's objectives: recorded, else read from its metric names (studies made
        without ``nas``), else accuracy and params.

        Raises:
            NasError: for a recorded objective no registered metric measures (a metric of
                the user's own, registered where the study was made but not here).
        """
        recorded = self.settings.get("objectives")
        if isinstance(recorded, list) and recorded:
            unknown_objectives(recorded, self.study.study_name)
            return tuple(recorded)
        by_dashboard = {m.dashboard: name for name, m in METRICS.items()}
        names = [by_dashboard.get(n) for n in (self.study.metric_names or [])]
        if names and all(names) and len(names) == len(self.study.directions):
            return tuple(n for n in names if n is not None)
        return (ACCURACY, "params")[: max(1, len(self.study.directions))]

    @property
    def costs(self) -> tuple[str, ...]:
        """The objectives accuracy is traded against (empty: accuracy alone)."""
        return self.objectives[1:]

    @property
    def second(self) -> str:
        """What accuracy is traded against first (``params`` for accuracy alone)."""
        return self.costs[0] if self.costs else "params"

    def limit(self, metric: str) -> float | None:
        """The study's recorded limit on ``metric``, or None when it has none."""
        limit = METRICS[metric].limit
        value = None if limit is None else self.settings.get(limit.setting)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
        return None

    @property
    def trials(self) -> int | None:
        """The trained trials a search study should have, as recorded now (None: none
        recorded, e.g. an in-memory study)."""
        value = self.settings.get("trials")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        return None

    @property
    def sampler(self) -> str:
        """The study's ``--sampler`` (``tpe``, the default before ``auto``, if none recorded)."""
        return str(self.settings.get("sampler") or "tpe")

    @property
    def dataset(self) -> str | None:
        return _str(self.settings.get("dataset"))

    @property
    def proxy_fidelity(self) -> dict[str, Any] | None:
        value = self.get(PROXY_FIDELITY)
        return value if isinstance(value, dict) else None

    def set_proxy_fidelity(self, fidelity: Mapping[str, Any]) -> None:
        self.set(PROXY_FIDELITY, dict(fidelity))

    def panel(self, version: int) -> list[dict[str, Any]] | None:
        """A fidelity panel scored by zero-cost code ``version`` (None: none, or another)."""
        stored = self.get(PANEL)
        if stored is None or self.get(PANEL_SCORES) != version:
            return None
        return list(stored)

    @property
    def panel_any(self) -> list[dict[str, Any]]:
        """The fidelity panel whatever scored it (empty: none)."""
        return list(self.get(PANEL) or [])

    def set_panel(self, panel: Sequence[Mapping[str, Any]], version: int) -> None:
        self.set(PANEL, [dict(p) for p in panel])
        self.set(PANEL_SCORES, version)

    def selections(self) -> dict[int, dict[str, Any]]:
        """NSGA-II's recorded parent selections, by generation (see :data:`SELECTION_KEY`)."""
        from nas.study import _optuna

        out = {}
        for key, value in _optuna.study_system_attrs(self.study).items():
            if key.startswith(SELECTION_KEY) and isinstance(value, dict):
                out[int(key[len(SELECTION_KEY) :])] = value
        return out

    def count_start(self) -> int:
        """The number of this run among the study's starts (0 for the first); call under
        the set-up lock, so that no two runs get the same one."""
        from nas.study import _optuna

        before = _optuna.study_system_attrs(self.study).get(STARTS)
        number = before if isinstance(before, int) else 0
        _optuna.set_study_system_attr(self.study, STARTS, number + 1)
        return number

    def set_selection(self, generation: int, selection: Mapping[str, Any]) -> None:
        from nas.study import _optuna

        _optuna.set_study_system_attr(self.study, f"{SELECTION_KEY}{generation}", dict(selection))

    def measurements(self, context: str) -> dict[str, dict[str, float]]:
        """Hardware measurements made in ``context`` (its key), by architecture key (see
        :class:`nas.hardware.cache.StudyMeasurements`)."""
        from nas.study import _optuna

        prefix = f"{MEASURED_KEY}{context}:"
        return {
            key[len(prefix) :]: dict(value)
            for key, value in _optuna.study_system_attrs(self.study).items()
            if key.startswith(prefix) and isinstance(value, dict)
        }

    def record_measurement(self, context: str, arch: str, values: Mapping[str, float]) -> None:
        """Keep ``values`` measured of architecture ``arch`` in ``context``."""
        from nas.study import _optuna

        _optuna.set_study_system_attr(self.study, f"{MEASURED_KEY}{context}:{arch}", dict(values))

    @property
    def hardware(self) -> dict[str, Any] | None:
        """The context the study's latency and memory were measured in (None: none yet)."""
        value = self.get(HARDWARE)
        return value if isinstance(value, dict) else None

    def set_hardware(self, context: Mapping[str, Any], key: str) -> None:
        """Record ``context`` (under ``key``) as the study's, keeping every earlier one."""
        contexts = self.get(HARDWARE_CONTEXTS)
        known = dict(contexts) if isinstance(contexts, dict) else {}
        self.set(HARDWARE_CONTEXTS, {**known, key: dict(context)})
        self.set(HARDWARE, dict(context))

    def hardware_of(self, trial: TrialRecord) -> dict[str, Any] | None:
        """The context ``trial``'s latency and memory were measured in (the study's for a
        trial that did not record one)."""
        contexts = self.get(HARDWARE_CONTEXTS)
        key = trial.measured_in
        if isinstance(contexts, dict) and key in contexts:
            found: dict[str, Any] = contexts[key]
            return found
        return self.hardware

    def note(self, target: int | None) -> str:
        """The note optuna-dashboard shows on trial id ``target`` (None: the study's)."""
        from nas.study import _dashboard, _optuna

        return _dashboard.note_body(_optuna.study_system_attrs(self.study), target)

    def note_hash(self, target: int | None) -> str | None:
        """The hash of the note ``nas`` last wrote on trial id ``target`` (None: the study)."""
        from nas.study import _optuna

        key = f"{NOTE_HASH}{'study' if target is None else target}"
        return _str(_optuna.study_system_attrs(self.study).get(key))

    def set_note_hash(self, target: int | None, digest: str) -> None:
        from nas.study import _optuna

        key = f"{NOTE_HASH}{'study' if target is None else target}"
        _optuna.set_study_system_attr(self.study, key, digest)
