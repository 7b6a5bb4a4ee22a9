"""Training: typed recipes and the one trainer that runs them (proxy and full)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_exports

if TYPE_CHECKING:
    from nas.training.progress import StepProgress
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
    "StepProgress",
    "StopTraining",
    "TrainResult",
    "Trainer",
    "TrainingFailed",
    "full_recipe",
    "proxy_recipe",
    "resolve_device",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "Recipe": "nas.training.recipe",
        "full_recipe": "nas.training.recipe",
        "proxy_recipe": "nas.training.recipe",
        "StepProgress": "nas.training.progress",
        "EpochResult": "nas.training.trainer",
        "StopTraining": "nas.training.trainer",
        "Trainer": "nas.training.trainer",
        "TrainingFailed": "nas.training.trainer",
        "TrainResult": "nas.training.trainer",
        "resolve_device": "nas.training.trainer",
    },
)
