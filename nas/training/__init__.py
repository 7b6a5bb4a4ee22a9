"""Training: typed recipes and the one trainer that runs them (proxy and full)."""

from __future__ import annotations

from nas.training.recipe import Recipe, full_recipe, proxy_recipe
from nas.training.trainer import (
    EpochResult,
    StopTraining,
    Trainer,
    TrainingFailed,
    TrainResult,
    resolve_device,
)

__all__ = [
    "EpochResult",
    "Recipe",
    "StopTraining",
    "TrainResult",
    "Trainer",
    "TrainingFailed",
    "full_recipe",
    "proxy_recipe",
    "resolve_device",
]
