"""What a study holds: trial categories, rejection rates over time, the Pareto front, the best
trial, how the guided trials compare with the random start-up ones.

Read through the record layer (:class:`nas.study.record.TrialRecord`), with the study's own
objectives (:class:`nas.study.record.StudyRecord`); used by the end-of-search summary,
``nas report``, ``nas train-winners``, ``nas export`` and the dashboard's notes.
"""

from __future__ import annotations

import bisect
import datetime
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.errors import NasError
from nas.objectives import METRICS
from nas.study.cleanup import INTERRUPTED
from nas.study.record import FIDELITY_SETTINGS, StudyRecord, TrialRecord
from nas.study.samplers import SAMPLERS, classify
from nas.units import plural

#: What a front is over: accuracy up, then one cost name or several, each down.
Costs = str | Sequence[str]


def _costs(costs: Costs) -> tuple[str, ...]:
    return (costs,) if isinstance(costs, str) else tuple(costs)


def is_rejected(t: FrozenTrial) -> bool:
    """Rejected before training (over a limit, or not buildable)."""
    return TrialRecord(t).is_rejected


def is_stopped(t: FrozenTrial) -> bool:
    """Trained for some epochs, then stopped early as hopeless."""
    return TrialRecord(t).is_stopped


def is_trained(t: FrozenTrial) -> bool:
    """Counts towards ``--trials``: trained to the end, or stopped early."""
    return TrialRecord(t).is_trained


def accuracy_of(t: FrozenTrial) -> float | None:
    """Proxy validation accuracy (a fraction) of a trained trial."""
    return TrialRecord(t).accuracy


def full_val_accuracy(t: FrozenTrial) -> float | None:
    """Validation accuracy after full training (what selection among winners uses)."""
    return TrialRecord(t).full_val_accuracy


def _cost(t: FrozenTrial, costs: Costs) -> tuple[float, ...]:
    """The trial's values of ``costs`` (params, FLOPs, ...); infinite where it has none."""
    r = TrialRecord(t)
    return tuple(math.inf if (v := r.value(c)) is None else v for c in _costs(costs))


#: What "the best trial" means everywhere nas names one (the search's summary and live
#: totals, the report's header, ``nas export --best``, the dashboard's study note).
BEST_RULE = (
    "the best trial is the one with the highest validation accuracy after full training "
    "(nas train-winners) if any was fully trained, else the highest proxy validation accuracy "
    "(a candidate trained several times by its mean); a tie goes to the cheaper trial (the "
    "study's costs in order), then to the earlier one; the test accuracy never chooses"
)


def choose_best(trials: list[FrozenTrial], second: Costs = "params") -> tuple[FrozenTrial, str]:
    """The best trial (:data:`BEST_RULE`) of the COMPLETE trials ``trials``: highest
    validation accuracy after full training if any trial was fully trained, else highest
    proxy (validation) accuracy; returns the trial and which rule chose it. The test
    accuracy never chooses: it is reported, not selected on. A tie goes to the cheaper trial
    (fewer ``second``: ``params`` or ``flops``, or several costs in order), then to the
    earlier one, so that the proxy rule's choice is on the Pareto front."""
    full = [t for t in trials if full_val_accuracy(t) is not None]
    if full:
        best = min(full, key=lambda t: (-(full_val_accuracy(t) or 0.0), _cost(t, second), t.number))
        return best, (
            "highest validation accuracy after full training (full_val_accuracy); "
            "the test accuracy is reported, never used to choose"
        )
    # a candidate trained several times competes once, by its mean, as its first trial
    runs = repeats(trials)
    later = {t.number for group in runs.values() for t in group[1:]}
    means = mean_accuracies(trials)
    best = min(
        (t for t in trials if t.number not in later),
        key=lambda t: (-means.get(t.number, accuracy_of(t) or 0.0), _cost(t, second), t.number),
    )
    return best, "highest proxy (validation) accuracy; no winner has been fully trained"


def best_trial(trials: Sequence[FrozenTrial], second: Costs = "params") -> FrozenTrial | None:
    """The most accurate COMPLETE candidate on the Pareto front of (accuracy, ``second``):
    the highest proxy accuracy (a candidate evaluated several times by its mean, see
    :func:`repeats`), a tie going to the cheaper trial, then to the earlier one.

    Such a trial is never dominated, so it is on :func:`pareto_front`; it costs O(n), not the
    front's O(n^2). Trials without a ``second`` value (which the front leaves out) are chosen
    only when no trial has one. None without a COMPLETE trial with an accuracy.
    """
    done = [t for t in trials if t.state == TrialState.COMPLETE and accuracy_of(t) is not None]
    means = mean_accuracies(done)
    firsts = [t for t in done if t.number in means]
    counted = [t for t in firsts if all(map(math.isfinite, _cost(t, second)))]
    return min(
        counted or firsts,
        key=lambda t: (-means[t.number], _cost(t, second), t.number),
        default=None,
    )


def repeats(trials: Sequence[FrozenTrial]) -> dict[int, list[FrozenTrial]]:
    """COMPLETE trials with an accuracy grouped by candidate (the same sampled parameters
    and architecture: the local sampler evaluates a promising candidate again, with other
    initial weights), keyed by the number of each candidate's first trial."""
    groups: dict[str, list[FrozenTrial]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if t.state == TrialState.COMPLETE and accuracy_of(t) is not None:
            groups.setdefault(candidate_key(t), []).append(t)
    return {g[0].number: g for g in groups.values()}


def candidate_key(t: FrozenTrial) -> str:
    """What makes two trials the same candidate: its architecture and sampled parameters."""
    return json.dumps([TrialRecord(t).arch, t.params], sort_keys=True, default=repr)


def mean_accuracies(trials: Sequence[FrozenTrial]) -> dict[int, float]:
    """Each candidate's mean proxy accuracy over its evaluations, keyed by its first trial's
    number: a front or a best trial judges a candidate evaluated twice by the mean, never by
    its luckier run, and lists it once."""
    return {n: mean_accuracy(g) for n, g in repeats(trials).items()}


def mean_accuracy(evaluations: Sequence[FrozenTrial]) -> float:
    """The mean proxy accuracy of one candidate's ``evaluations``."""
    return sum(accuracy_of(t) or 0.0 for t in evaluations) / len(evaluations)


def candidate_runs(trials: Sequence[FrozenTrial]) -> dict[int, list[FrozenTrial]]:
    """Every evaluation's trial number -> all evaluations of its candidate (:func:`repeats`),
    so that a candidate shown by any of its trials finds its runs and their mean (a front
    against latency shows its first trial measured in the study's latest hardware context)."""
    return {t.number: group for group in repeats(trials).values() for t in group}


@dataclass
class StudyStats:
    """Counts and derived figures of a study."""

    trials: list[FrozenTrial]
    complete: int = 0
    rejected: int = 0
    stopped: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    rejection_first_third: float | None = None
    rejection_last_third: float | None = None
    #: The best trial (:data:`BEST_RULE`, the one ``nas export --best`` exports).
    best: FrozenTrial | None = None
    #: Which part of the rule chose it.
    best_rule: str = ""
    #: How many times its candidate was trained (its accuracy is their mean).
    best_runs: int = 1
    pareto: list[FrozenTrial] = field(default_factory=list)

    @property
    def trained(self) -> int:
        return self.complete + self.stopped

    @property
    def best_accuracy(self) -> float | None:
        """The best trial's proxy accuracy (the mean over its candidate's runs)."""
        if self.best is None:
            return None
        return mean_accuracies(self.trials).get(self.best.number, accuracy_of(self.best))


def sampled_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Finished trials that sampled a candidate (rejected, trained or failed), in order; a
    trial Ctrl-C or SIGTERM interrupted is not one (its candidate is tried again)."""
    return [
        t
        for t in sorted(trials, key=lambda t: t.number)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        and not TrialRecord(t).not_trained
        and not (TrialRecord(t).fail_reason or "").startswith(tuple(INTERRUPTED.values()))
    ]


#: Fewest sampled trials in each third for the rejection rates of the thirds to be given
#: (with fewer, a share moves by a third or more with one trial).
MIN_PER_THIRD = 5


def rejection_thirds(trials: Sequence[FrozenTrial]) -> tuple[float | None, float | None]:
    """Share of rejected candidates in the first and last third of the sampled trials (None,
    None with fewer than :data:`MIN_PER_THIRD` trials in a third)."""
    sampled = sampled_trials(trials)
    n = len(sampled) // 3
    if n < MIN_PER_THIRD:
        return None, None
    first, last = sampled[:n], sampled[-n:]
    return (sum(map(is_rejected, first)) / n, sum(map(is_rejected, last)) / n)


def _front_points(
    trials: Sequence[FrozenTrial], costs: tuple[str, ...]
) -> tuple[list[FrozenTrial], dict[int, float]]:
    """What a front is drawn from: each candidate once, by its first COMPLETE trial with an
    accuracy and every cost, and the candidates' mean accuracies (over all their
    evaluations) by that trial's number. Against a latency or memory cost, only trials
    measured in the study's latest hardware context count (:func:`comparable_contexts`): a
    value measured elsewhere, or at another batch, does not compare, so a candidate trained
    again after ``--remeasure`` stands on the front by its new measurement."""
    kept = comparable_contexts(trials) if any(METRICS[c].hardware for c in costs) else None

    def compares(t: FrozenTrial) -> bool:
        in_context = kept is None or TrialRecord(t).measured_in in kept
        return in_context and all(map(math.isfinite, _cost(t, costs)))

    firsts, means = [], {}
    for evaluations in repeats(trials).values():
        usable = [t for t in evaluations if compares(t)]
        if usable:
            firsts.append(usable[0])
            means[usable[0].number] = mean_accuracy(evaluations)
    return firsts, means


def comparable_contexts(trials: Sequence[FrozenTrial]) -> set[str | None]:
    """The hardware contexts whose measurements a front compares: the one the latest
    COMPLETE trial was measured in (``--remeasure`` starts a new one), and trials that name
    none (from before contexts were recorded) only while no other context was trained."""
    measured = [
        (t.number, key)
        for t in trials
        if t.state == TrialState.COMPLETE and (key := TrialRecord(t).measured_in)
    ]
    if not measured:
        return {None}
    latest = max(measured)[1]
    return {latest} if len({key for _, key in measured}) > 1 else {latest, None}


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether point ``a`` dominates ``b``: each is (accuracy, cost, cost, ...), accuracy
    maximised and costs minimised; no worse in every one and better in one."""
    no_worse = a[0] >= b[0] and all(x <= y for x, y in zip(a[1:], b[1:], strict=True))
    return no_worse and tuple(a) != tuple(b)


def pareto_front(trials: Sequence[FrozenTrial], second: Costs = "params") -> list[FrozenTrial]:
    """Candidates not dominated in (accuracy up, each of ``second`` down), most accurate
    first; a candidate evaluated several times counts once, by its mean accuracy (as its
    first trial)."""
    costs = _costs(second)
    done, means = _front_points(trials, costs)
    return _front(done, means, costs)


def _front(
    done: list[FrozenTrial], means: dict[int, float], costs: tuple[str, ...]
) -> list[FrozenTrial]:
    points = {t.number: (means[t.number], *_cost(t, costs)) for t in done}
    front = [
        t for t in done if not any(dominates(points[o.number], points[t.number]) for o in done)
    ]
    return sorted(front, key=lambda t: -means[t.number])


def pareto_fronts(
    trials: Sequence[FrozenTrial], second: Costs = "params"
) -> list[list[FrozenTrial]]:
    """Non-dominated sorting: the Pareto front, then the front of what is left, and so on
    (candidates by their mean accuracy, as in :func:`pareto_front`)."""
    costs = _costs(second)
    left, means = _front_points(trials, costs)
    fronts = []
    while left:
        front = _front(left, means, costs)
        fronts.append(front)
        taken = {t.number for t in front}
        left = [t for t in left if t.number not in taken]
    return fronts


def second_objective(study: optuna.Study) -> str:
    """What accuracy is traded against first (``params`` or ``flops``; ``params`` if single)."""
    return StudyRecord(study).second


def trained_trials(study: optuna.Study) -> list[FrozenTrial]:
    """COMPLETE trials with a proxy accuracy; refuses a study without any (saying so when
    its complete trials were scored by the user's own objective through ``nas.suggest``)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    drawn = [t for t in complete if TrialRecord(t).arch is not None]
    done = [t for t in drawn if accuracy_of(t) is not None]
    if done:
        return done
    name = study.study_name
    if drawn:  # an Optuna study of the user's own objective, sampled with nas.suggest
        raise NasError(
            f"study {name!r} has {plural(len(drawn), 'complete trial')} that your own objective "
            "scored (nas.suggest), none trained by nas search, so no proxy accuracy ranks them: "
            "nas export --trial N writes any of them (Optuna's study.best_trial, or best_trials, "
            "ranks them by your objective)"
        )
    if complete and StudyRecord(study).get(FIDELITY_SETTINGS) is None:  # no nas candidate
        raise NasError(
            f"study {name!r} has {plural(len(complete), 'complete trial')}, none of them an "
            "architecture nas drew (nas search, or nas.suggest in your objective), so there "
            "is nothing for nas to rank; Optuna's study.best_trial (or best_trials) ranks them"
        )
    if StudyRecord(study).get(FIDELITY_SETTINGS) is not None:
        raise NasError(
            f"study {name!r} is a fidelity study (nas fidelity made it): nas fidelity "
            "--storage URL --study NAME prints its summary"
        )
    raise NasError(f"study {name!r} has no trained trial{_why_untrained(study)}")


def _why_untrained(study: optuna.Study) -> str:
    """Why a search study has no trained trial yet, in words that follow "no trained
    trial": its trials failed, were rejected, were stopped (and are retried), or none ran."""
    records = list(map(TrialRecord, study.get_trials(deepcopy=False)))
    interrupted = tuple(INTERRUPTED.values())  # retried, not failures of a candidate
    failed = [
        r
        for r in records
        if r.state == TrialState.FAIL
        and r.fail_reason
        and not r.fail_reason.startswith(interrupted)
    ]
    rejected = [r for r in records if r.is_rejected]
    running = [r.trial.number for r in records if r.state == TrialState.RUNNING]
    if running:  # training now, or their worker died: failed and retried after the grace
        one = len(running) == 1
        them, their = ("it", "its") if one else ("them", "their")
        return (
            f" yet: {plural(len(running), 'trial')} ({', '.join(map(str, running))}) "
            f"{'is' if one else 'are'} still running; if no worker trains {them} any more, "
            f"nas search on this study fails and retries {them} once {their} heartbeats are "
            "older than its grace period"
        )
    if len(failed) > len(rejected):  # e.g. every proxy's loss went NaN
        return f": {plural(len(failed), 'trial')} failed (the last: {failed[-1].fail_reason})" + (
            f" and {len(rejected)} rejected by its limits" if rejected else ""
        )
    if rejected:
        return (
            f": {plural(len(rejected), 'candidate')} it drew "
            f"{'was' if len(rejected) == 1 else 'were'} rejected by its limits (the last: "
            f"{rejected[-1].rejected}); raise the limit or use a smaller space"
        )
    stopped = [
        r
        for r in records
        if r.state == TrialState.FAIL
        and (not r.fail_reason or r.fail_reason.startswith(interrupted))
    ]
    if stopped:  # Ctrl-C, SIGTERM or a dead worker: retried first by the next run
        last = stopped[-1]
        return (
            f" yet: {plural(len(stopped), 'trial')} "
            f"{'was' if len(stopped) == 1 else 'were'} stopped before training ended (the "
            f"last, trial {last.trial.number}: {last.fail_reason or 'no reason recorded'}); "
            "nas search on this study retries them first"
        )
    return " yet: search first (nas search, or nas.Search)"


def best_of(study: optuna.Study) -> tuple[FrozenTrial, str]:
    """The study's best trial and the rule that chose it (:func:`choose_best` over its
    trained trials and costs): what ``nas export --best`` and :func:`best` return, by the
    rule the report and the search's summary also apply.

    Raises:
        NasError: for a study without a trained trial.
    """
    return choose_best(trained_trials(study), study_costs(study))


def best(study: optuna.Study) -> FrozenTrial:
    """The best trial of a study ``nas`` searched (``nas.best``), the one ``nas export
    --best`` picks: the highest validation accuracy after full training if a winner was
    fully trained, else the highest proxy (validation) accuracy, a tie going to the cheaper
    trial, then to the earlier one. A search has two objectives or more, so Optuna's
    ``study.best_trial`` refuses, and ``study.best_trials`` is the whole Pareto front in
    trial order; this is the one trial ``nas`` means by best. Its proxy accuracy is
    ``trial.user_attrs["accuracy"]`` (also ``trial.values[0]``).

    Raises:
        TypeError: for anything but an ``optuna.Study``.
        NasError: for a study without a trained trial.
    """
    if not isinstance(study, optuna.Study):
        raise TypeError(
            f"nas.best takes the optuna.Study a search returned, not {type(study).__name__}; "
            "load one with optuna.load_study(study_name=..., storage=...)"
        )
    return best_of(study)[0]


def study_costs(study: optuna.Study) -> tuple[str, ...]:
    """Every objective accuracy is traded against (``params`` for accuracy alone)."""
    return StudyRecord(study).costs or ("params",)


def study_stats(study: optuna.Study, *, front: bool = True) -> StudyStats:
    """Counts, rejection rates by thirds, best trial (:func:`best_trial`, on the front) and
    (with ``front``) the Pareto front of ``study`` over all its objectives. The front costs
    O(n^2) in the trained trials; the search loop, which asks for the counts before every
    trial, leaves it out."""
    trials = study.get_trials(deepcopy=False)
    return stats_of(trials, study_costs(study), front=front)


def stats_since(
    stats: StudyStats, since: datetime.datetime, workers: Collection[str] | None = None
) -> int:
    """The trained trials (:func:`is_trained`) of ``stats`` that started at ``since`` or
    later in one of ``workers`` (``host:pid``, as trials record it; None: any): what one
    run trained, not what other workers on the study trained meanwhile."""
    return sum(
        1
        for t in stats.trials
        if t.datetime_start is not None
        and t.datetime_start >= since
        and is_trained(t)
        and (workers is None or TrialRecord(t).worker in workers)
    )


def stats_of(trials: Sequence[FrozenTrial], costs: Costs, *, front: bool = True) -> StudyStats:
    """:func:`study_stats` of ``trials`` traded against ``costs``."""
    s = StudyStats(trials=list(trials))
    for t in trials:
        r = TrialRecord(t)
        if t.state == TrialState.COMPLETE:
            s.complete += 1
        elif r.is_rejected:
            s.rejected += 1
        elif r.is_stopped:
            s.stopped += 1
        elif t.state == TrialState.FAIL:
            s.failed += 1
        elif t.state == TrialState.RUNNING:
            s.running += 1
        elif t.state == TrialState.WAITING:
            s.waiting += 1
    s.rejection_first_third, s.rejection_last_third = rejection_thirds(trials)
    trained = [t for t in trials if t.state == TrialState.COMPLETE and accuracy_of(t) is not None]
    if trained:
        s.best, s.best_rule = choose_best(trained, costs)
        s.best_runs = len(repeats(trained).get(s.best.number, [s.best]))
    if front:
        s.pareto = pareto_front(trials, costs)
    return s


def rung_epochs(epochs: int, eta: float, min_epochs: int) -> list[int]:
    """Successive halving's rungs for a proxy of ``epochs`` epochs: ``min_epochs``,
    ``min_epochs * eta``, ... (rounded, distinct) below ``epochs`` (stopping at the last
    epoch saves nothing)."""
    out: list[int] = []
    budget = float(min_epochs)
    while round(budget) < epochs:
        if not out or round(budget) > out[-1]:
            out.append(round(budget))
        budget *= eta
    return out


def study_rungs(study: optuna.Study) -> list[int]:
    """The epochs at which the study's successive halving decided (none if it was off)."""
    recorded = StudyRecord(study).settings
    if recorded.get("early_stopping") != "sha" or "eta" not in recorded:
        return []  # off, or a study from before successive halving
    eta, min_epochs = float(recorded["eta"]), int(recorded.get("min_epochs", 1))
    if not eta > 1 or min_epochs < 1:
        return []
    return rung_epochs(int(recorded.get("proxy_epochs", 0)), eta, min_epochs)


# --------------------------------------------------------------------------- guided vs start-up
#: Fewest trained trials each of the start-up and the guided group needs to be compared.
MIN_COMPARED_TRIALS = 3


def hypervolume(points: Sequence[tuple[float, float]], limit: float) -> float:
    """Area dominated by (accuracy, cost) points, accuracy maximised and cost minimised, with
    reference point (accuracy 0, cost = ``limit``), the cost axis scaled to [0, 1] by
    ``limit``: 1.0 would be accuracy 1 at no cost, 0.0 is nothing. Points over the limit add
    nothing; dominated points add nothing.

    Raises:
        ValueError: for a limit that is not positive.
    """
    if not limit > 0:
        raise ValueError(f"limit must be positive, got {limit!r}")
    steps = sorted((c, a) for a, c in points if c <= limit)  # cheapest first
    edges = [c for c, _ in steps] + [limit]
    area, best = 0.0, 0.0
    for i, (cost, acc) in enumerate(steps):
        best = max(best, acc)  # the best accuracy at cost <= x, for x in [cost, next cost)
        area += best * (edges[i + 1] - cost)
    return area / limit


def sampled_by(trials: Sequence[FrozenTrial], sampler: str = "tpe") -> dict[int, str]:
    """How each started trial's candidate was chosen, by number (one of
    :data:`nas.study.record.SAMPLED_BY_VALUES`).

    The ``sampled_by`` a trial recorded; otherwise (studies from before it) derived the way
    the search derives it (:func:`nas.study.samplers.classify`): a retry of a failed trial is
    ``retry``, a trial queued with fixed parameters ``enqueued``, and the rest as the
    study's ``--sampler`` classifies them, given how many COMPLETE or PRUNED trials had
    finished (``datetime_complete``) before it started (``datetime_start``), which is the
    count TPE looks at when it samples. Trials that never started (WAITING) are left out.
    """
    ordered = sorted(trials, key=lambda t: t.number)
    finished = sorted(
        t.datetime_complete
        for t in ordered
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.datetime_complete is not None
    )
    out: dict[int, str] = {}
    for t in ordered:
        r = TrialRecord(t)
        if r.sampled_by is not None:
            out[t.number] = r.sampled_by
        elif t.datetime_start is not None and sampler in SAMPLERS:
            before = bisect.bisect_left(finished, t.datetime_start)
            out[t.number] = classify(r, sampler, before)
    return out


@dataclass(frozen=True)
class SamplingGroup:
    """The trained trials of one way of sampling (start-up or guided).

    Attributes:
        trained: trained trials (COMPLETE or stopped early).
        best_trial: number of the most accurate COMPLETE one (:func:`best_trial`), or None.
        best_accuracy: its proxy accuracy.
        front: the numbers of the group's own Pareto front, most accurate first.
        hypervolume: of that front (:func:`hypervolume`, 0.0 without one).
    """

    trained: int
    best_trial: int | None
    best_accuracy: float | None
    front: tuple[int, ...]
    hypervolume: float


@dataclass(frozen=True)
class StartupComparison:
    """How the guided trials compare with the random start-up trials of the same study.

    Attributes:
        sampler: the study's sampler.
        second: what accuracy is traded against (``params`` or ``flops``).
        limit: the cost at the hypervolume's reference point (the study's limit).
        startup, guided: the two groups.
        others: trained trials that are neither (enqueued presets, retries, unknown).
        min_trials: fewest trained trials each group needs (:data:`MIN_COMPARED_TRIALS`).
        gain: the guided best accuracy minus the start-up one (None if not compared).
        verdict: one sentence saying what the comparison shows, or why there is none.
    """

    sampler: str
    second: str
    limit: float
    startup: SamplingGroup
    guided: SamplingGroup
    others: int
    min_trials: int
    gain: float | None
    verdict: str

    @property
    def compared(self) -> bool:
        """Whether both groups had enough trials to be compared."""
        return self.gain is not None


def _points(gain: float) -> str:
    """An accuracy difference in percentage points: ``+3.4 points``, ``-0.05 points``."""
    text = f"{100 * gain:+.1f}"
    if gain and float(text) == 0:
        text = f"{100 * gain:+.2f}"
    return f"{text} point{'' if abs(float(text)) == 1 else 's'}"


def _group(trials: Sequence[FrozenTrial], second: str, limit: float) -> SamplingGroup:
    """One group's figures, a candidate evaluated several times by its mean."""
    best = best_trial(trials, second)
    front = pareto_front(trials, second)
    means = mean_accuracies(trials)

    def accuracy(t: FrozenTrial) -> float:
        return means.get(t.number, accuracy_of(t) or 0.0)

    points = [(accuracy(t), _cost(t, second)[0]) for t in front]
    return SamplingGroup(
        trained=sum(map(is_trained, trials)),
        best_trial=best.number if best is not None else None,
        best_accuracy=accuracy(best) if best is not None else None,
        front=tuple(t.number for t in front),
        hypervolume=hypervolume(points, limit) if points else 0.0,
    )


def startup_comparison(
    trials: Sequence[FrozenTrial],
    second: str,
    limit: float,
    *,
    sampler: str = "tpe",
    min_trials: int = MIN_COMPARED_TRIALS,
) -> StartupComparison:
    """Compare the guided trials of a study with its random start-up trials.

    Each trained trial goes to the group :func:`sampled_by` puts it in (a candidate drawn
    again, to the group of its first draw: a guided trial that repeats a start-up candidate
    found nothing new, and its luckier run must not count as a find); per group, the count,
    the most accurate trial and the hypervolume of the group's own front of (accuracy,
    ``second`` / ``limit``). With at least ``min_trials`` trained trials in each group (and
    a COMPLETE one), the verdict gives the guided best against the start-up best in
    percentage points, and both hypervolumes; otherwise it says how many there are.
    Bear in mind that the best of more trials tends to be higher by chance alone.
    """
    how = sampled_by(trials, sampler)
    trained = [t for t in trials if is_trained(t)]
    first: dict[str, int] = {}  # each candidate's first trained trial
    for t in sorted(trained, key=lambda t: t.number):
        first.setdefault(candidate_key(t), t.number)
    by_group: dict[str, list[FrozenTrial]] = {"startup": [], "guided": []}
    others = 0
    for t in trained:  # a candidate drawn again counts, by its mean, where it was first drawn
        group = by_group.get(how.get(first[candidate_key(t)], ""))
        if group is None:
            others += 1
        else:
            group.append(t)
    startup = _group(by_group["startup"], second, limit)
    guided = _group(by_group["guided"], second, limit)
    gain, verdict = _verdict(startup, guided, sampler, min_trials)
    return StartupComparison(
        sampler=sampler,
        second=second,
        limit=float(limit),
        startup=startup,
        guided=guided,
        others=others,
        min_trials=min_trials,
        gain=gain,
        verdict=verdict,
    )


def _verdict(
    startup: SamplingGroup, guided: SamplingGroup, sampler: str, min_trials: int
) -> tuple[float | None, str]:
    """The guided best's gain over the start-up best (None: too few to compare) and the
    sentence that says so."""
    if (
        startup.trained < min_trials
        or guided.trained < min_trials
        or startup.best_accuracy is None
        or guided.best_accuracy is None
    ):
        total = startup.trained + guided.trained
        verdict = (
            f"too few trials to compare: {startup.trained:,} start-up, {guided.trained:,} "
            f"guided trained {'trial' if total == 1 else 'trials'}; need at least "
            f"{plural(min_trials, 'trained trial')} with an accuracy in each group"
        )
        if sampler == "random":
            verdict += " (the random sampler samples every trial at random)"
        return None, verdict
    gain = round(guided.best_accuracy - startup.best_accuracy, 12)  # means tie exactly
    found = f"trial {guided.best_trial} at {guided.best_accuracy:.4f}"
    against = f"the best start-up trial, trial {startup.best_trial} at {startup.best_accuracy:.4f}"
    if gain > 0:
        verdict = f"the guided trials found {found} ({_points(gain)} over {against})"
    elif gain == 0:
        verdict = f"the guided trials found nothing better: their best, {found}, ties {against}"
    else:
        verdict = (
            f"the guided trials found nothing better: their best, {found}, is "
            f"{_points(gain)[1:]} below {against}"
        )
    verdict += (
        f"; hypervolume of their fronts: guided {guided.hypervolume:.3f}, start-up "
        f"{startup.hypervolume:.3f} ({guided.trained:,} guided and {startup.trained:,} "
        "start-up trained trials)"
    )
    return gain, verdict


def study_limit(study: optuna.Study, second: str) -> float | None:
    """The study's recorded limit on ``second`` (a metric name), or None when it has none."""
    return StudyRecord(study).limit(second)


def study_sampler(study: optuna.Study) -> str:
    """The study's ``--sampler`` (``tpe``, the default before ``auto``, if none recorded)."""
    return StudyRecord(study).sampler


def study_startup_comparison(
    study: optuna.Study, trials: Sequence[FrozenTrial] | None = None
) -> StartupComparison:
    """:func:`startup_comparison` of ``study`` with its own second objective, sampler and
    limit (without a recorded limit: the largest cost among its trained trials)."""
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    second = second_objective(study)
    limit = study_limit(study, second)
    if limit is None:
        costs = [_cost(t, second)[0] for t in trials if is_trained(t)]
        limit = max((c for c in costs if math.isfinite(c)), default=1.0) or 1.0
    return startup_comparison(trials, second, limit, sampler=study_sampler(study))
