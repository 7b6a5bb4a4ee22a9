"""What a study holds: trial categories, rejection rates over time, the Pareto front.

Used by the end-of-search summary, ``nas report``, ``nas train-winners`` and ``nas export``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import optuna
from optuna.trial import FrozenTrial, TrialState


def is_rejected(t: FrozenTrial) -> bool:
    """Rejected before training (over the limit, or not buildable)."""
    return "rejected" in t.user_attrs


def is_stopped(t: FrozenTrial) -> bool:
    """Trained for some epochs, then stopped early as hopeless."""
    return t.state == TrialState.PRUNED and "stopped_early" in t.user_attrs


def is_trained(t: FrozenTrial) -> bool:
    """Counts towards ``--trials``: trained to the end, or stopped early."""
    return t.state == TrialState.COMPLETE or is_stopped(t)


def accuracy_of(t: FrozenTrial) -> float | None:
    """Proxy validation accuracy (a fraction) of a trained trial."""
    value = t.user_attrs.get("accuracy")
    return float(value) if value is not None else None


def full_val_accuracy(t: FrozenTrial) -> float | None:
    """Validation accuracy after full training (what selection among winners uses)."""
    value = t.user_attrs.get("full_val_accuracy")
    return float(value) if value is not None else None


class ProxyFidelity(TypedDict):
    """How well proxy accuracy ranks the fully trained winners.

    Attributes:
        tau: Kendall's tau between proxy ``accuracy`` and ``full_val_accuracy``; None with
            fewer than two winners or when it is undefined (all values equal).
        n: number of trials with both accuracies.
        trials: their trial numbers, in order.
        tau_low, tau_high: a bootstrap 90% interval of tau (None with fewer than 3).
    """

    tau: float | None
    n: int
    trials: list[int]
    tau_low: float | None
    tau_high: float | None


#: Below this many fully trained winners, a proxy-fidelity tau is flagged as meaning little.
FIDELITY_MIN_N = 5


def fidelity_text(fidelity: ProxyFidelity) -> str:
    """``Kendall's tau 0.67 [90%: 0.20, 1.00], n=6`` or why there is none, with a warning
    when it rests on fewer than :data:`FIDELITY_MIN_N` winners."""
    n = fidelity["n"]
    if n < 2:
        return f"not enough fully trained winners, n={n}"
    if fidelity["tau"] is None:
        return f"Kendall's tau undefined (constant accuracies), n={n}"
    text = f"Kendall's tau {fidelity['tau']:.2f}"
    low, high = fidelity.get("tau_low"), fidelity.get("tau_high")
    if low is not None and high is not None:
        text += f" [90%: {low:.2f}, {high:.2f}]"
    text += f", n={n}"
    if n < FIDELITY_MIN_N:
        text += f" (fewer than {FIDELITY_MIN_N} winners: it means little)"
    return text


def proxy_fidelity(trials: Sequence[FrozenTrial]) -> ProxyFidelity:
    """Kendall's tau between proxy ``accuracy`` and ``full_val_accuracy`` of the trained
    winners (both on the validation split; the test split never enters a ranking).

    Only trials with both user attributes count. ``tau`` is None with fewer than two of them
    or when it is undefined (constant accuracies), so the result is plain JSON (it is stored
    as the study user attribute ``proxy_fidelity`` by ``nas train-winners``).
    """
    from scipy.stats import kendalltau

    from nas.proxy.ranking import agreement

    pairs = [
        (t.number, accuracy_of(t), full_val_accuracy(t))
        for t in sorted(trials, key=lambda t: t.number)
        if full_val_accuracy(t) is not None and accuracy_of(t) is not None
    ]
    tau: float | None = None
    low: float | None = None
    high: float | None = None
    if len(pairs) >= 2:
        proxy = [float(p[1] or 0.0) for p in pairs]
        full = [float(p[2] or 0.0) for p in pairs]
        value = float(kendalltau(proxy, full).statistic)
        tau = value if math.isfinite(value) else None
        if len(pairs) >= 3:
            interval = agreement(proxy, full)
            low, high = interval["tau_low"], interval["tau_high"]
    return {
        "tau": tau,
        "n": len(pairs),
        "trials": [p[0] for p in pairs],
        "tau_low": low,
        "tau_high": high,
    }


def choose_best(trials: list[FrozenTrial]) -> tuple[FrozenTrial, str]:
    """Highest validation accuracy after full training if any trial was fully trained, else
    highest proxy (validation) accuracy; returns the trial and which rule chose it. The test
    accuracy never chooses: it is reported, not selected on."""
    full = [t for t in trials if full_val_accuracy(t) is not None]
    if full:
        best = max(full, key=lambda t: full_val_accuracy(t) or 0.0)
        return best, (
            "highest validation accuracy after full training (full_val_accuracy); "
            "the test accuracy is reported, never used to choose"
        )
    best = max(trials, key=lambda t: accuracy_of(t) or 0.0)
    return best, "highest proxy (validation) accuracy; no winner has been fully trained"


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
    best: FrozenTrial | None = None
    pareto: list[FrozenTrial] = field(default_factory=list)

    @property
    def trained(self) -> int:
        return self.complete + self.stopped

    @property
    def best_accuracy(self) -> float | None:
        return accuracy_of(self.best) if self.best else None


def sampled_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Finished trials that sampled a candidate (rejected, trained or failed), in order."""
    return [
        t
        for t in sorted(trials, key=lambda t: t.number)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        and "not_trained" not in t.user_attrs
    ]


def rejection_thirds(trials: Sequence[FrozenTrial]) -> tuple[float | None, float | None]:
    """Share of rejected candidates in the first and last third of the sampled trials."""
    sampled = sampled_trials(trials)
    n = len(sampled) // 3
    if n == 0:
        return None, None
    first, last = sampled[:n], sampled[-n:]
    return (sum(map(is_rejected, first)) / n, sum(map(is_rejected, last)) / n)


def pareto_front(trials: Sequence[FrozenTrial], second: str = "params") -> list[FrozenTrial]:
    """COMPLETE trials not dominated in (accuracy up, ``second`` down), by accuracy."""
    done = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and accuracy_of(t) is not None and second in t.user_attrs
    ]
    front = []
    for t in done:
        a, c = accuracy_of(t), t.user_attrs[second]
        assert a is not None
        dominated = any(
            (accuracy_of(o) or 0) >= a
            and o.user_attrs[second] <= c
            and ((accuracy_of(o) or 0) > a or o.user_attrs[second] < c)
            for o in done
        )
        if not dominated:
            front.append(t)
    return sorted(front, key=lambda t: -(accuracy_of(t) or 0))


def pareto_fronts(trials: Sequence[FrozenTrial], second: str = "params") -> list[list[FrozenTrial]]:
    """Non-dominated sorting: the Pareto front, then the front of what is left, and so on."""
    left = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and accuracy_of(t) is not None and second in t.user_attrs
    ]
    fronts = []
    while left:
        front = pareto_front(left, second)
        fronts.append(front)
        taken = {t.number for t in front}
        left = [t for t in left if t.number not in taken]
    return fronts


def second_objective(study: optuna.Study) -> str:
    """``params`` or ``flops``: what accuracy is traded against (``params`` if single)."""
    names = study.metric_names or []
    return "flops" if len(names) > 1 and "flops" in names[1] else "params"


def study_stats(study: optuna.Study, *, front: bool = True) -> StudyStats:
    """Counts, rejection rates by thirds, best trial and (with ``front``) the Pareto front of
    ``study``. The front costs O(n^2) in the trained trials; the search loop, which asks for
    the counts before every trial, leaves it out."""
    trials = study.get_trials(deepcopy=False)
    s = StudyStats(trials=list(trials))
    for t in trials:
        if t.state == TrialState.COMPLETE:
            s.complete += 1
        elif is_rejected(t):
            s.rejected += 1
        elif is_stopped(t):
            s.stopped += 1
        elif t.state == TrialState.FAIL:
            s.failed += 1
        elif t.state == TrialState.RUNNING:
            s.running += 1
        elif t.state == TrialState.WAITING:
            s.waiting += 1
    s.rejection_first_third, s.rejection_last_third = rejection_thirds(trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and accuracy_of(t) is not None]
    s.best = max(complete, key=lambda t: accuracy_of(t) or 0, default=None)
    if front:
        s.pareto = pareto_front(trials, second_objective(study))
    return s
