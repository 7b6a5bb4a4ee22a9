"""Best-first neighbourhood search: a sampler that climbs from the best candidates found.

After a random start-up of ``n_init`` evaluated candidates, each new candidate is a neighbour
of an incumbent that has not been tried yet (evaluated, rejected, failed or running):

* **neighbours** of a point change one parameter by one step (another choice of a
  categorical, the next value of an integer or a stepped float, a tenth of the range of a
  continuous one) or **swap** the values of two parameters drawn from the same distribution
  (stage depths, edge operations): a swap keeps what the point is made of, and so its size,
  which is how a search under a hard limit moves a costly part elsewhere without passing
  through candidates over the limit;
* **the incumbent** is the evaluated point with the best mean accuracy over its evaluations
  that still has untried neighbours (with several objectives: a point of the observed Pareto
  front, drawn at random among those with untried neighbours); before a single-objective
  incumbent is expanded it is evaluated a second time (``confirm``), so that one lucky
  observation does not steer the search.

Rejected candidates never come back, and every worker reads the same trials, so several
workers share one study without coordination. Candidates are remembered by their parameters:
parameters a point does not have (an attention knob of another attention type) are drawn at
random when the objective asks for them.

Measured on NAS-Bench-201 under a size limit with one training seed's accuracy per
evaluation (``benchmarks/tabular_search.py``), it beats random sampling where TPE does not;
see README ("When does the search beat random?").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.study.record import TrialRecord, set_trial_system

#: The system attribute a trial's phase is recorded under (``startup`` or ``guided``).
PHASE_KEY = "nas:local:phase"

Point = tuple[tuple[str, Any], ...]


def point_of(params: dict[str, Any]) -> Point:
    """A candidate's parameters as a hashable point."""
    return tuple(sorted(params.items()))


def _steps(value: Any, d: BaseDistribution) -> list[Any]:
    """The values one step from ``value`` in distribution ``d``."""
    if isinstance(d, CategoricalDistribution):
        return [c for c in d.choices if c != value]
    if isinstance(d, IntDistribution):
        jump = d.step if not d.log else max(1, abs(int(value)) // 2)
        return [v for v in (value - jump, value + jump) if d.low <= v <= d.high]
    if isinstance(d, FloatDistribution):
        delta = d.step if d.step is not None else (d.high - d.low) / 10
        return [v for v in (value - delta, value + delta) if d.low <= v <= d.high]
    return []


def neighbours(point: dict[str, Any], space: dict[str, BaseDistribution]) -> list[dict[str, Any]]:
    """Every point one step from ``point`` (see the module doc): one parameter changed by
    one step, or two parameters of the same distribution swapped."""
    names = [n for n in sorted(point) if n in space]
    out = []
    for n in names:
        for v in _steps(point[n], space[n]):
            out.append({**point, n: v})
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if space[a] == space[b] and point[a] != point[b]:
                out.append({**point, a: point[b], b: point[a]})
    return out


def front(means: dict[Point, tuple[float, ...]]) -> list[Point]:
    """The points whose (accuracy up, costs down) values no other point's dominate."""

    def beats(x: tuple[float, ...], y: tuple[float, ...]) -> bool:
        no_worse = x[0] >= y[0] and all(a <= b for a, b in zip(x[1:], y[1:], strict=True))
        return no_worse and x != y

    return [p for p, v in means.items() if not any(beats(w, v) for w in means.values())]


class LocalSearchSampler(BaseSampler):
    """Best-first neighbourhood search (see the module doc).

    Args:
        seed: the random stream.
        n_init: evaluated candidates drawn at random before the search climbs.
        confirm: evaluations a single-objective incumbent needs before it is expanded.
        model: a model-based sampler (TPE) that proposes a share of the guided candidates of
            a study of several objectives instead of a neighbour (None: none). The start-up
            stays random: a model's start-up narrows what the climb starts from (measured: it
            loses to random on NAS-Bench-201, 63% of seeds against 87%).
        model_share: that share (half: measured best on NAS-Bench-201, see the module doc);
            with one objective every guided candidate is a neighbour.
    """

    def __init__(
        self,
        seed: int | None = None,
        n_init: int = 20,
        confirm: int = 2,
        model: BaseSampler | None = None,
        model_share: float = 0.5,
        front_order: str = "random",
    ) -> None:
        self._rng = np.random.default_rng(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self.n_init = n_init
        self.confirm = confirm
        self.model = model
        self.model_share = model_share if model is not None else 0.0
        self.front_order = front_order

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()
        if self.model is not None:
            self.model.reseed_rng()

    @classmethod
    def phase_of(cls, record: TrialRecord) -> str | None:
        """The phase a trial was sampled in (``startup`` or ``guided``), as recorded."""
        phase = record.system(PHASE_KEY)
        return None if phase is None else str(phase)

    def _modelled(self, trial: FrozenTrial) -> bool:
        """Whether the model proposes this trial's candidate."""
        return self.model is not None and self._plans.get(trial.number) is None

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._modelled(trial):
            assert self.model is not None
            return self.model.infer_relative_search_space(study, trial)
        return {}  # every parameter is proposed in sample_independent, from one plan per trial

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self._modelled(trial) and search_space:
            assert self.model is not None
            return self.model.sample_relative(study, trial, search_space)
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        """Plan this trial's candidate (a random start-up one, a neighbour of an incumbent,
        or the model's) and record the phase; the objective's suggestions then read it."""
        if self.model is not None:
            self.model.before_trial(study, trial)
        trials = study.get_trials(deepcopy=False)
        evaluated = [t for t in trials if _value(t) is not None]
        trained = sum(TrialRecord(t).is_trained for t in trials)
        plan: dict[str, Any] | None = {}
        phase = "startup"
        if trained >= self.n_init and evaluated:
            phase = "guided"
            several = len(study.directions) > 1
            if several and self._rng.random() < self.model_share:
                plan = None  # the model's turn
            else:
                plan = self._next(study, trials, evaluated) or {}
        self._plans[trial.number] = plan
        set_trial_system(study, trial, PHASE_KEY, phase)

    @property
    def _plans(self) -> dict[int, dict[str, Any] | None]:
        plans: dict[int, dict[str, Any] | None] = self.__dict__.setdefault("_plan_store", {})
        return plans

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._modelled(trial):
            assert self.model is not None
            return self.model.sample_independent(study, trial, param_name, param_distribution)
        plan = self._plans.get(trial.number) or {}
        if param_name in plan and _contains(param_distribution, plan[param_name]):
            return plan[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if self.model is not None:
            self.model.after_trial(study, trial, state, values)
        self._plans.pop(trial.number, None)

    def _next(
        self, study: Study, trials: Sequence[FrozenTrial], evaluated: Sequence[FrozenTrial]
    ) -> dict[str, Any] | None:
        """The next candidate: a re-evaluation of an unconfirmed incumbent, or an untried
        neighbour of the best incumbent that has one (None: nothing left to climb)."""
        tried = {point_of(t.params) for t in trials if t.params}
        observed: dict[Point, list[tuple[float, ...]]] = {}
        spaces: dict[Point, dict[str, BaseDistribution]] = {}
        for t in evaluated:
            p = point_of(t.params)
            observed.setdefault(p, []).append(_value(t) or ())
            spaces[p] = dict(t.distributions)
        means = {p: tuple(np.mean(v, axis=0)) for p, v in observed.items()}
        for p in self._incumbents(means, len(study.directions)):
            if len(study.directions) == 1 and len(observed[p]) < self.confirm:
                return dict(p)  # one observation may be luck: evaluate it again first
            options = [n for n in neighbours(dict(p), spaces[p]) if point_of(n) not in tried]
            if options:
                return options[int(self._rng.integers(len(options)))]
        return None

    def _incumbents(self, means: dict[Point, tuple[float, ...]], objectives: int) -> list[Point]:
        """Incumbents in the order they are tried: by mean accuracy (one objective), or the
        observed Pareto front, then the rest by accuracy (several). The front's order is
        random, or drawn in proportion to what each member adds to the front's
        hypervolume (``front_order="contribution"``, two objectives)."""
        by_accuracy = sorted(means, key=lambda p: -means[p][0])
        if objectives == 1:
            return by_accuracy
        first = front(means)
        weights = (
            contributions([means[p] for p in first]) if self.front_order == "contribution" else None
        )
        if weights is not None and np.isfinite(weights).all() and weights.max() > 0:
            # a weighted random order (Efraimidis and Spirakis): keys u^(1/w), largest first
            w = np.maximum(weights / weights.max(), 1e-6)  # every member can come up
            keys = self._rng.random(len(first)) ** (1.0 / w)
            order = [first[i] for i in np.argsort(-keys)]
        else:
            order = [first[i] for i in self._rng.permutation(len(first))]
        return order + [p for p in by_accuracy if p not in set(first)]


def contributions(points: list[tuple[float, ...]]) -> np.ndarray | None:
    """What each point of a two-objective front (accuracy up, cost down) alone adds to its
    hypervolume (reference: accuracy 0, the largest cost plus a tenth of the range); None
    for another number of objectives."""
    if not points or len(points[0]) != 2:
        return None
    order = sorted(range(len(points)), key=lambda i: points[i][1])
    costs = [points[i][1] for i in order]
    reference = costs[-1] + 0.1 * (costs[-1] - costs[0] or abs(costs[-1]) or 1.0)
    out = np.zeros(len(points))
    for k, i in enumerate(order):
        below = points[order[k - 1]][0] if k > 0 else 0.0
        right = costs[k + 1] if k + 1 < len(order) else reference
        out[i] = max(0.0, points[i][0] - below) * (right - costs[k])
    return out


def _value(t: FrozenTrial) -> tuple[float, ...] | None:
    """What a trial observed: its values when COMPLETE; None otherwise (rejected, failed,
    running, or stopped early: hopeless, so never an incumbent)."""
    if t.state == TrialState.COMPLETE and t.values is not None:
        return tuple(t.values)
    return None


def _contains(d: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is one ``d`` can take (a plan from another distribution may not)."""
    if isinstance(d, CategoricalDistribution):
        return value in d.choices
    if isinstance(d, IntDistribution | FloatDistribution):
        return isinstance(value, int | float) and d.low <= value <= d.high
    return False


def local_init(trials: int) -> int:
    """The random start-up of a study of ``trials`` trained trials: a fifth of them, at least
    four (about 20 at 100 trials, which is where it was measured best)."""
    return max(4, math.floor(trials / 5 + 0.5))
