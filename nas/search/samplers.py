"""Samplers by name. TPE and NSGA-II learn the parameter limit from rejected trials'
constraint values (Optuna 5: ``trial.set_constraint``).

Optuna's NSGA-II builds its generations from COMPLETE trials only, and a rejected candidate
ends PRUNED, so plain NSGA-II never sees a rejection. :class:`RejectionAwareNSGAII` counts
rejected and early-stopped candidates as members of their generation: a rejection is an
infeasible member (constraint value > 0), which Deb's constrained domination ranks behind
every feasible one and, among infeasible ones, by how far over the limit it was; a stopped
trial is a feasible member with the accuracy it had when it stopped. Parents are therefore
chosen knowing where the limit lies, and generations advance with every sampled candidate,
not only with trained ones.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import NSGAIISampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.search.settings import SAMPLERS
from nas.search.stats import accuracy_of, is_rejected, is_stopped, second_objective

SamplerFactory = Callable[[int, int], optuna.samplers.BaseSampler]


def nsga2_population(trials: int) -> int:
    """NSGA-II's population for a budget of ``trials`` trained trials: a quarter of it,
    between 4 and 50, so that even the default budget (20) runs several generations (rejected
    candidates fill generations too, see :class:`RejectionAwareNSGAII`)."""
    return max(4, min(50, round(trials / 4)))


class RejectionAwareNSGAII(NSGAIISampler):
    """NSGA-II whose generations include rejected (infeasible) and early-stopped candidates."""

    def _as_member(self, study: Study, t: FrozenTrial) -> FrozenTrial | None:
        """``t`` as a generation member (COMPLETE, with values), or None if it is none."""
        if t.state == TrialState.COMPLETE:
            return t
        if t.state != TrialState.PRUNED or not t.constraints:
            return None
        if is_rejected(t):
            accuracy = 0.0  # never feasible: constrained domination ranks it by violation
        elif is_stopped(t):
            accuracy = accuracy_of(t) or 0.0
        else:
            return None
        member = copy.copy(t)
        member.state = TrialState.COMPLETE
        cost = float(t.user_attrs.get(second_objective(study)) or t.user_attrs.get("params") or 0)
        member.values = [accuracy, cost][: len(study.directions)]
        return member

    def _members(self, study: Study) -> list[FrozenTrial]:
        trials = study._get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED), use_cache=True
        )
        return [m for t in trials if (m := self._as_member(study, t)) is not None]

    def get_trial_generation(self, study: Study, trial: FrozenTrial) -> int:
        key = self._get_generation_key()
        generation = trial.system_attrs.get(key)
        if generation is not None:
            return int(generation)
        latest, count = 0, 0
        for t in self._members(study):
            g = t.system_attrs.get(key, -1)
            if g > latest:
                latest, count = g, 1
            elif g == latest:
                count += 1
        assert self.population_size is not None
        generation = latest if count < self.population_size else latest + 1
        study._storage.set_trial_system_attr(trial._trial_id, key, generation)
        return generation

    def get_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        key = self._get_generation_key()
        return [t for t in self._members(study) if t.system_attrs.get(key) == generation]

    def get_parent_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        parents = super().get_parent_population(study, generation)
        return [m for t in parents if (m := self._as_member(study, t)) is not None]

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        generation = self.get_trial_generation(study, trial)  # every trial joins one
        if not search_space:
            return {}
        parents = [
            p
            for p in self.get_parent_population(study, generation)
            if search_space.keys() <= p.params.keys()  # a candidate that failed to build
        ]
        if len(parents) < 2:
            return {}
        return dict(self._child_generation_strategy(study, search_space, parents))


SAMPLERS.add(
    "tpe",
    lambda seed, trials: optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=10
    ),
)
SAMPLERS.add(
    "nsga2",
    lambda seed, trials: RejectionAwareNSGAII(seed=seed, population_size=nsga2_population(trials)),
)
SAMPLERS.add("random", lambda seed, trials: optuna.samplers.RandomSampler(seed=seed))


def make_sampler(name: str, seed: int, trials: int = 20) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` seeded with ``seed``, sized for ``trials`` trained trials."""
    return SAMPLERS[name](seed, trials)
