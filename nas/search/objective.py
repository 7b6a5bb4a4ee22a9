"""The objective: draw a candidate, check the limits, reject it or ask the evaluator, report.

One trial of a search, whatever evaluates it (:mod:`nas.search.evaluate`: the proxy trainer,
a table lookup, a measurement):

1. :class:`Candidates` draws a candidate with the trial's ``suggest_*`` calls, measures it
   before any training (the metrics of :data:`nas.objectives.METRICS` that the study limits,
   cheapest first) and, over a limit or not buildable, records a rejection: the reason and a
   positive constraint value per limit, so that the samplers learn where the limit lies;
   the trial ends PRUNED and does not count towards ``--trials``. :func:`suggest` is the same
   step for a user's own Optuna objective.
2. The trial records how its candidate was chosen (``sampled_by``, as the study's sampler
   classifies it: :func:`nas.study.samplers.classify`).
3. The :class:`TrainingGate` decides whether a candidate that fits may be trained (the study's
   training slots, asked once per trial).
4. The evaluator observes the candidate's accuracy; the trial's values are the accuracy and
   the study's other objectives, measured before training.

Every attribute is written through :class:`nas.study.record.TrialWriter`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import optuna
from optuna.trial import TrialState

from nas.budget import Budget, Measure, Verdict, measure_metric
from nas.errors import ConfigError, NasError, check_known
from nas.objectives import ACCURACY, METRICS, limited
from nas.search.evaluate import Evaluator, TrialRun, failure_reason
from nas.search.events import SearchMonitor
from nas.study.cleanup import INTERRUPTED
from nas.study.record import TrialWriter
from nas.study.samplers import classify
from nas.study.storage import worker_id

if TYPE_CHECKING:
    from nas.config import ArchConfig
    from nas.space import SearchSpace


class Rejected(optuna.TrialPruned):
    """A candidate over a limit, or one that cannot be built (recorded before raising)."""


class CandidateSpace(Protocol):
    """Where candidates come from: a search space for the trial's ``suggest_*`` calls."""

    def suggest(self, trial: optuna.trial.Trial) -> Any:
        """A candidate (raises :class:`~nas.errors.ConfigError` if it cannot be built)."""
        ...

    def describe(self, candidate: Any) -> dict[str, Any]:
        """What a trial records of the candidate (JSON)."""
        ...

    def label(self, candidate: Any) -> str:
        """A short label for progress lines."""
        ...


@dataclass(frozen=True)
class ArchSpace:
    """A search-space file's architectures for data of the given shape (``nas search``)."""

    space: Any  # nas.space.SearchSpace
    in_channels: int = 3
    input_size: int = 32
    num_classes: int = 10

    def suggest(self, trial: optuna.trial.Trial) -> Any:
        return self.space.suggest(
            trial,
            in_channels=self.in_channels,
            input_size=self.input_size,
            num_classes=self.num_classes,
        )

    def describe(self, candidate: Any) -> dict[str, Any]:
        data: dict[str, Any] = candidate.to_dict()
        return data

    def label(self, candidate: Any) -> str:
        a = candidate.attention
        return "none" if a.type == "none" else f"{a.type}/{a.placement}/{a.join}"


def constrain(trial: optuna.trial.Trial, violations: Mapping[str, float]) -> None:
    """Set the trial's constraint values (what the samplers learn rejections from). The
    retry of a dead worker's trial already carries them (Optuna copies the system attributes
    of the trial it repeats: the same candidate, the same values), and Optuna's warning that
    it keeps them is not the user's concern."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The constraint value is ignored")
        for key, violation in violations.items():
            trial.set_constraint(key, violation)


@dataclass
class Candidates:
    """How a study's candidates are drawn and judged before any training.

    Attributes:
        space: where candidates come from.
        budget: the study's limits.
        wanted: metrics measured for a candidate that fits (the objectives, and the metrics
            recorded for every candidate).
        measure: how a metric is measured (default: the registry's own function).
    """

    space: CandidateSpace
    budget: Budget
    wanted: tuple[str, ...] = ()
    measure: Measure = field(default=measure_metric)

    def draw(self, trial: optuna.trial.Trial, writer: TrialWriter) -> tuple[Any, Verdict]:
        """A candidate and its verdict; a rejected one is recorded and raises
        :class:`Rejected` with the reason."""
        try:
            candidate = self.space.suggest(trial)
        except ConfigError as exc:
            constrain(trial, {next(iter(self.budget.limits), "params"): 1.0})
            self._reject(writer, f"cannot build: {exc}")
        writer.candidate(self.space.describe(candidate))
        verdict = self.budget.check(candidate, measure=self.measure)
        writer.measured(verdict.values, self._context())
        constrain(trial, verdict.violations)
        if verdict.reason is not None:
            self._reject(writer, verdict.reason)
        return candidate, verdict

    def complete(self, candidate: Any, verdict: Verdict, writer: TrialWriter) -> Verdict:
        """``verdict`` with every wanted metric measured (for a candidate admitted to
        training: FLOPs need an fvcore trace, so they wait until here when not limited)."""
        verdict = self.budget.complete(candidate, verdict, self.wanted, self.measure)
        writer.measured(verdict.values, self._context())
        return verdict

    def _context(self) -> str | None:
        """The key of the context the measure measures hardware metrics in (None: it
        measures none: :class:`nas.hardware.cache.HardwareMeter` has one)."""
        context = getattr(self.measure, "context", None)
        return getattr(context, "key", None)

    @staticmethod
    def _reject(writer: TrialWriter, reason: str) -> Any:
        writer.rejected(reason)
        raise Rejected(reason)


def wanted_metrics(
    objectives: Sequence[str], knows: Callable[[str], bool] = lambda name: True
) -> tuple[str, ...]:
    """What to measure of a candidate that fits: its objectives measured before training and
    the metrics recorded for every candidate that the evaluator ``knows`` how to measure
    (a table knows its sizes but not FLOPs), in registry order."""
    return tuple(
        name
        for name, m in METRICS.items()
        if m.before_training and (name in objectives or (m.always and knows(name)))
    )


#: The (space, limits, data shape) that :func:`suggest` found reachable: checked once each.
_REACHABLE: set[str] = set()


def space_of(space: Any) -> SearchSpace:
    """What :func:`suggest` takes as a space: a file's path or a shipped space's name, a
    :class:`nas.space.SearchSpace`, or a parsed space file (a dict).

    Raises:
        NasError: for anything else, or a space file that is missing or malformed.
    """
    from nas.space import SearchSpace, load_space, parse_space

    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, str | Path):
        return load_space(space)
    if isinstance(space, Mapping):
        return parse_space(space)
    raise NasError(
        "space must be a space file's path or name, a nas.space.SearchSpace or a parsed "
        f"space file (a dict), got {type(space).__name__}"
    )


def _check_suggest(trial: Any, **shape: Any) -> None:
    """Refuse what :func:`suggest` cannot take, in one sentence."""
    if not isinstance(trial, optuna.trial.BaseTrial):
        raise NasError(
            f"nas.suggest needs the trial your objective is given (an optuna.trial.Trial), "
            f"got {trial!r}"
        )
    for name, value in shape.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise NasError(f"{name} must be a positive integer (your data's), got {value!r}")


def suggest(
    trial: optuna.trial.Trial,
    space: Any,
    *,
    in_channels: int = 3,
    input_size: int = 32,
    num_classes: int = 10,
    **limits: Any,
) -> ArchConfig:
    """An architecture for a user's own Optuna objective, drawn from ``space`` with the
    trial's ``suggest_*`` calls, counted before any weights exist and checked against the
    limits, exactly as ``nas search`` does. The trial records the architecture (``arch``) and
    what was measured of it: its limited metrics cheapest first, up to the limit it is over
    (``params`` always: the parameter limit is checked first), and, when it fits, ``flops``.

    Args:
        trial: the trial of the user's objective.
        space: a search-space file (path, or the name of a shipped space such as
            ``"small_cifar"``), a :class:`nas.space.SearchSpace`, or a space file's contents
            as a dict (a parsed TOML file).
        in_channels: channels of the user's images.
        input_size: side of the user's (square) images.
        num_classes: classes of the user's data.
        limits: hard limits by setting name, e.g. ``param_limit="5M"``,
            ``flops_limit=500e6``, ``latency_limit="2ms"`` (see ``nas search --help``); as
            in ``nas search``, the 5M parameter limit holds unless ``param_limit`` is given.

    Returns:
        The architecture, recorded in the trial with the values it was checked on.

    Raises:
        optuna.TrialPruned: over a limit or not buildable, with the reason; the trial records
            it as ``nas search`` does (``rejected`` and a constraint value per limit), so
            the project's samplers (:func:`nas.make_sampler`) learn where the limit lies,
            and Optuna's TPE ranks it behind every trained trial (Optuna's NSGA-II ignores
            PRUNED trials). Let Optuna mark the trial PRUNED.
        NasError: for a limit that is not one ``nas`` knows, or a malformed value, a data
            shape (``in_channels``, ``input_size``, ``num_classes``) that is not a positive
            integer, and (on the first call for a space and its limits) for a limit below
            the space's cheapest candidate, which no trial could meet.
    """
    _check_suggest(trial, in_channels=in_channels, input_size=input_size, num_classes=num_classes)
    loaded = space_of(space)
    shape = ArchSpace(loaded, in_channels, input_size, num_classes)
    budget = Budget(parse_limits(limits))
    checked = (repr(loaded), sorted(budget.limits.items()), in_channels, input_size, num_classes)
    if (key := repr(checked)) not in _REACHABLE:
        keywords = {m.limit.setting: m.limit.setting for m in limited() if m.limit is not None}
        budget.check_reachable(loaded, shape, names=keywords)
        _REACHABLE.add(key)
    candidates = Candidates(shape, budget, wanted_metrics(()))
    writer = TrialWriter(trial)
    arch, verdict = candidates.draw(trial, writer)
    candidates.complete(arch, verdict, writer)
    drawn: ArchConfig = arch  # a space file's candidates are architectures
    return drawn


def parse_limits(given: Mapping[str, Any]) -> dict[str, float]:
    """Limits by metric name from limits by setting name (``param_limit="5M"``), each parsed
    like its flag, over the limits' defaults as ``nas search`` keeps them: the 5M parameter
    limit holds unless ``param_limit`` is given, also next to ``latency_limit``.

    Raises:
        NasError: for an unknown setting name (listing the valid ones) or a malformed value.
    """
    by_setting = {m.limit.setting: m for m in limited() if m.limit is not None}
    check_known("limit", given, by_setting)
    out = {
        m.name: float(m.limit.default)
        for m in by_setting.values()
        if m.limit is not None and m.limit.default is not None
    }
    for name, value in given.items():
        limit = by_setting[name].limit
        assert limit is not None
        out[by_setting[name].name] = float(limit.parse(value))
    return out


class TrainingGate(Protocol):
    """Decides whether a candidate that fits the limits may be trained (one method, in the
    spirit of Optuna's ``BasePruner.prune``)."""

    def admit(self, trial_number: int) -> bool:
        """True: train trial ``trial_number`` now; False: the study has enough trained
        trials (the trial ends PRUNED with ``not_trained``)."""
        ...


class OpenGate:
    """Admits every candidate (one worker without training slots: a benchmark, a test)."""

    def admit(self, trial_number: int) -> bool:
        return True


Say = Callable[[str], None]


@dataclass
class Objective:
    """Callable objective for ``study.optimize`` (see the module doc).

    Attributes:
        candidates: how candidates are drawn and judged before training.
        evaluator: what observes a candidate that fits.
        objectives: the study's objectives, accuracy first.
        sampler: the study's ``--sampler`` (how its trials are classified).
        monitor: receives progress events for the display.
        gate: whether a candidate may be trained (default: always).
        started: the trials this objective started (this process's).
        worker: this process, as its trials record it.
    """

    candidates: Candidates
    evaluator: Evaluator
    objectives: tuple[str, ...]
    sampler: str
    monitor: SearchMonitor
    gate: TrainingGate = field(default_factory=lambda: OpenGate())
    started: set[int] = field(default_factory=set, init=False)
    worker: str = field(default_factory=worker_id, init=False)

    def __call__(self, trial: optuna.trial.Trial) -> float | tuple[float, ...]:
        """Draw, judge and evaluate one candidate; a trial Ctrl-C or SIGTERM stops at any
        point (counting it, building its trainer, training it) records why, so that the
        next start retries it (:func:`nas.study.cleanup.retry_interrupted`)."""
        self.started.add(trial.number)
        writer = TrialWriter(trial)
        try:
            return self._run(trial, writer)
        except KeyboardInterrupt as exc:
            if writer.record().fail_reason is None:
                writer.failed(INTERRUPTED[getattr(exc, "signal", "SIGINT")])
            raise

    def _run(self, trial: optuna.trial.Trial, writer: TrialWriter) -> float | tuple[float, ...]:
        started = time.perf_counter()
        writer.started(self.worker)
        finished = len(
            trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        )
        try:
            candidate, verdict = self.candidates.draw(trial, writer)
        except Rejected as exc:
            self.monitor.rejected(trial.number, str(exc), time.perf_counter() - started)
            raise
        except Exception as exc:  # a candidate that cannot even be counted: failed, with why
            if not isinstance(exc, optuna.TrialPruned) and writer.record().fail_reason is None:
                reason = failure_reason(exc)
                writer.failed(reason)
                self.monitor.trial_finished(trial.number, "failed", reason)
            raise
        finally:
            record = writer.record()
            writer.sampled(classify(record, self.sampler, finished), record.retry_of)
        if not self.gate.admit(trial.number):
            writer.not_trained("the study already has enough trained trials")
            raise optuna.TrialPruned("budget of trained trials reached")
        try:
            verdict = self.candidates.complete(candidate, verdict, writer)
            run = TrialRun(
                trial, writer, self.monitor, started, self.objectives[1:], verdict.values
            )
            accuracy = self.evaluator.evaluate(
                candidate, self.candidates.space.label(candidate), run
            )
        except Exception as exc:  # the trial fails; its reason is recorded (once)
            if not isinstance(exc, optuna.TrialPruned) and writer.record().fail_reason is None:
                writer.failed(failure_reason(exc))
            raise
        values = [
            accuracy if name == ACCURACY else verdict.values[name] for name in self.objectives
        ]
        return values[0] if len(values) == 1 else tuple(values)
