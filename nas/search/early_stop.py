"""Asynchronous successive halving that is multi-objective aware (in the spirit of MO-ASHA,
Schmucker et al. 2021), for the proxies of a search.

Optuna's pruners refuse multi-objective studies, so this one reads the learning curves that
every trial stores (user attribute ``curve``, written after each epoch, so every worker and
every machine sees them) and decides on its own:

* **Rungs** are epochs at geometric training budgets: ``min_epochs``, ``min_epochs * eta``,
  ``min_epochs * eta**2``, ... below ``--proxy-epochs`` (stopping at the last epoch saves
  nothing).
* At a rung, the trial is compared with every trial that reached that rung, in any state and
  from any worker: its **members**. Each member is a point (accuracy at the rung, costs), the
  costs being the study's own objectives other than accuracy (parameters, FLOPs, ...); a
  single-objective study has none. Members are sorted into non-dominated fronts, where ``a``
  beats ``b`` when ``a`` costs no more in every cost and is strictly more accurate at the
  rung.
* **No decision on too little**: while fewer than ``min_members`` trials (itself included)
  reached the rung, the trial continues (as Optuna's ``bootstrap_count``): with eta 2, two
  members keep one, so without a minimum the second trial to arrive could be stopped on a
  single comparison.
* The trial **continues** when it is on the first front (nobody of no higher cost beats it:
  it may be the best model at its size), or when it is among the top ``floor(n / eta)``
  members ranked by front, then accuracy. Otherwise it stops, and the reason names a member of
  no higher cost that beat it.

With one objective every member has the same cost, the first front holds the most accurate
members, and the rule is that of Optuna's ``SuccessiveHalvingPruner`` (the top
``floor(n / eta)``, and the best so far while fewer than ``eta`` trials reached the rung).

No synchronisation is needed: decisions are asynchronous (ASHA, Li et al. 2020), so a trial
that reaches a rung early meets fewer members and is more likely to continue; nothing is ever
stopped by a trial that costs more than it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from nas.errors import NasError
from nas.study.record import TrialRecord
from nas.study.stats import rung_epochs
from nas.units import human, plural

#: A point of the stopper: (accuracy at a rung, cost, cost, ...).
Point = tuple[float, ...]


@dataclass(frozen=True)
class CurvePoint:
    """What the stopper knows of another trial: its costs and its accuracy per epoch."""

    number: int
    cost: tuple[float, ...]
    curve: tuple[float, ...]

    def __post_init__(self) -> None:
        if isinstance(self.cost, int | float):  # one cost given as a number
            object.__setattr__(self, "cost", (float(self.cost),))


def curve_points(
    trials: Sequence[FrozenTrial], costs: Sequence[str], exclude: int | None = None
) -> list[CurvePoint]:
    """The curves recorded in ``trials`` (all but trial number ``exclude``), with their values
    of the metrics ``costs`` (empty: a single objective, no cost)."""
    points = []
    for t in trials:
        r = TrialRecord(t)
        curve = r.curve
        if t.number == exclude or not curve:
            continue
        values = r.values(costs)
        if any(v is None for v in values):
            continue
        points.append(CurvePoint(t.number, tuple(float(v or 0.0) for v in values), curve))
    return points


def _beats(a: Point, b: Point) -> bool:
    """``a`` costs no more than ``b`` in every cost and is strictly more accurate."""
    return a[0] > b[0] and all(x <= y for x, y in zip(a[1:], b[1:], strict=True))


@dataclass(frozen=True)
class Decision:
    """The verdict at a rung: ``stop`` with its ``reason``, or continue."""

    stop: bool
    rung: int
    reason: str


def fronts(points: Sequence[Point]) -> list[int]:
    """The non-dominated front of each (accuracy, cost, ...) point, 0 first, where a point is
    beaten by one that costs no more in every cost and is strictly more accurate."""
    rank = [-1] * len(points)
    left = set(range(len(points)))
    level = 0
    while left:
        front = [i for i in left if not any(_beats(points[j], points[i]) for j in left if j != i)]
        for i in front:
            rank[i] = level
        left -= set(front)
        level += 1
    return rank


@dataclass(frozen=True)
class SuccessiveHalving:
    """Asynchronous multi-objective successive halving over epochs (see the module doc).

    Attributes:
        eta: keep the top 1/eta at each rung; rungs are ``eta`` times apart.
        min_epochs: the first rung (epochs trained before any decision).
        cost_names: how each cost is named in reasons (``params``, ``FLOPs``; none: a single
            objective).
        min_members: trials (this one included) that must have reached a rung before any
            is stopped there.
    """

    eta: float = 2.0
    min_epochs: int = 1
    cost_names: tuple[str, ...] = ("params",)
    min_members: int = 1

    def __post_init__(self) -> None:
        if not self.eta > 1:
            raise NasError(f"--eta must be greater than 1, got {self.eta:g}")
        if self.min_epochs < 1:
            raise NasError(f"--min-epochs must be at least 1, got {self.min_epochs}")
        if self.min_members < 1:
            raise NasError(f"--min-members must be at least 1, got {self.min_members}")

    def rungs(self, epochs: int) -> list[int]:
        """The epochs after which decisions are taken, for a proxy of ``epochs`` epochs."""
        return rung_epochs(epochs, self.eta, self.min_epochs)

    def decide(
        self,
        others: Sequence[CurvePoint],
        cost: float | Sequence[float],
        epoch: int,
        epochs: int,
        accuracy: float,
    ) -> Decision | None:
        """The decision after ``epoch`` (1-based) of ``epochs`` for a trial of ``cost`` (one
        per cost name) at ``accuracy``; None when ``epoch`` is not a rung."""
        if epoch not in self.rungs(epochs):
            return None
        own = (float(cost),) if isinstance(cost, int | float) else tuple(cost)
        k = epoch - 1
        members = [(p.curve[k], p.cost, p.number) for p in others if len(p.curve) > k]
        points: list[Point] = [(accuracy, *own)] + [(a, *c) for a, c, _ in members]
        rank = fronts(points)
        n = len(points)
        if n < self.min_members:
            return Decision(
                False,
                epoch,
                f"epoch {epoch}: {n} of the {plural(self.min_members, 'trial')} needed to "
                "decide at this rung",
            )
        keep = math.floor(n / self.eta)
        order = sorted(range(n), key=lambda i: (rank[i], -points[i][0]))
        position = order.index(0)
        if rank[0] == 0:
            why = "no trial of no higher cost beat it" if self.cost_names else "the best so far"
            return Decision(False, epoch, f"epoch {epoch}: {why} ({n} at this rung)")
        if position < keep:
            return Decision(
                False, epoch, f"epoch {epoch}: in the top {keep} of {n} (front {rank[0] + 1})"
            )
        beaters = [m for m in members if _beats((m[0], *m[1]), (accuracy, *own))]
        best = max(beaters, key=lambda m: (m[0], tuple(-c for c in m[1])))
        by = f"trial {best[2]}"
        if self.cost_names:
            theirs = ", ".join(
                f"{human(c)} {name}" for c, name in zip(best[1], self.cost_names, strict=False)
            )
            ours = ", ".join(human(c) for c in own)
            by += f" ({theirs}, no more than its {ours})"
        return Decision(
            True,
            epoch,
            f"stopped at epoch {epoch} of {epochs}: accuracy {accuracy:.3f} is not in the top "
            f"{keep} of {n} trials at this rung (front {rank[0] + 1}); {by} reached "
            f"{best[0]:.3f}",
        )


#: Trial states whose curves the stopper reads: finished, stopped, or still training.
WITH_CURVES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
