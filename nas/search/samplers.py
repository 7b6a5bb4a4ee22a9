"""Samplers by name. TPE and NSGA-II learn the parameter limit from rejected trials'
constraint values (Optuna 5: ``trial.set_constraint``)."""

from __future__ import annotations

from collections.abc import Callable

import optuna

from nas.registry import Registry

SamplerFactory = Callable[[int], optuna.samplers.BaseSampler]
SAMPLERS: Registry[SamplerFactory] = Registry("sampler")

SAMPLERS.add(
    "tpe",
    lambda seed: optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, constant_liar=True, n_startup_trials=10
    ),
)
SAMPLERS.add("nsga2", lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=20))
SAMPLERS.add("random", lambda seed: optuna.samplers.RandomSampler(seed=seed))


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` seeded with ``seed``."""
    return SAMPLERS[name](seed)
