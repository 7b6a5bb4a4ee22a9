"""Training recipes as typed data: the proxy's and seed 001's full recipe.

One trainer (:mod:`nas.training.trainer`) runs every recipe; a recipe only says what to do.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.errors import NasError
from nas.registry import Registry

#: Learning-rate decay after warm-up: progress in [0, 1] -> fraction of the peak rate.
SCHEDULES: Registry[Callable[[float], float]] = Registry("schedule")
SCHEDULES.add("cosine", lambda progress: 0.5 * (1 + math.cos(math.pi * progress)))
SCHEDULES.add("linear", lambda progress: 1 - progress)


#: The batch size a learning rate given for the proxy (``--proxy-lr``) refers to.
LR_REFERENCE_BATCH = 256


def scaled_lr(lr: float, batch_size: int, reference: int = LR_REFERENCE_BATCH) -> float:
    """The linear scaling rule (Goyal et al., 2017): a rate tuned at ``reference`` images per
    step, used at ``batch_size``, is multiplied by ``batch_size / reference``, so that the
    step per image seen stays the same whatever batch the subset size leads to."""
    return lr * batch_size / reference


@dataclass(frozen=True)
class Recipe:
    """How to train a network.

    Attributes:
        epochs: passes over the training images.
        batch_size: images per step.
        lr: peak learning rate of SGD.
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 on conv and linear weights (not on BN, biases or join gains).
        label_smoothing: cross-entropy label smoothing.
        warmup: fraction of all steps spent warming the learning rate up linearly from 0.
        schedule: decay after warm-up, per step: ``cosine`` or ``linear`` (to zero).
        crop_padding: random crop after zero padding by this many pixels (0: off).
        flip: random horizontal flips.
        mixup_alpha: Beta(alpha, alpha) mixup strength (0: off).
        cutmix_alpha: Beta(alpha, alpha) cutmix strength (0: off); with mixup, each batch
            uses one of the two at random.
        grad_clip: clip the gradient norm to this value (None: off).
        ema_decay: keep an exponential moving average of the weights with this decay and
            evaluate it (None: off).
        flip_tta: score each image by the mean of the logits of it and its mirror image
            (test-time augmentation, as airbench does).
    """

    epochs: int
    batch_size: int = 256
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup: float = 0.1
    schedule: str = "linear"
    crop_padding: int = 4
    flip: bool = True
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    grad_clip: float | None = None
    ema_decay: float | None = None
    flip_tta: bool = False

    def __post_init__(self) -> None:
        """Refuse values no training can take, all at once (a comparison with NaN is false,
        so NaN is refused too)."""
        checks = (
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch size must be at least 2, got {self.batch_size}"),
            (0 < self.lr < math.inf, f"learning rate must be positive, got {self.lr}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"weight decay must be at least 0, got {self.weight_decay}"),
            (0 <= self.label_smoothing < 1,
             f"label smoothing must be in [0, 1), got {self.label_smoothing}"),
            (0 <= self.warmup < 1, f"warm-up must be a fraction in [0, 1), got {self.warmup}"),
            (self.schedule in SCHEDULES,
             f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (self.crop_padding >= 0, f"crop padding must be at least 0, got {self.crop_padding}"),
            (self.mixup_alpha >= 0, f"mixup alpha must be at least 0, got {self.mixup_alpha}"),
            (self.cutmix_alpha >= 0, f"cutmix alpha must be at least 0, got {self.cutmix_alpha}"),
            (self.ema_decay is None or 0 < self.ema_decay < 1,
             f"EMA decay must be in (0, 1), got {self.ema_decay}"),
            (self.grad_clip is None or self.grad_clip > 0,
             f"gradient clipping must be positive, got {self.grad_clip}"),
        )  # fmt: skip
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise NasError("; ".join(problems))

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Recipes of the short proxy by name: ``PROXY_RECIPES[name](epochs)``.
PROXY_RECIPES: Registry[Callable[[int], Recipe]] = Registry("proxy recipe")

#: The proxy recipe searches use unless told otherwise (and that studies recorded before
#: recipes had names were trained with).
DEFAULT_PROXY_RECIPE = "standard"


@PROXY_RECIPES.register(DEFAULT_PROXY_RECIPE)
def _standard_proxy(epochs: int) -> Recipe:
    """Crop (padding 4) and flip, label smoothing 0.1, linear warm-up and decay."""
    return Recipe(epochs=epochs)


@PROXY_RECIPES.register("fast")
def _fast_proxy(epochs: int) -> Recipe:
    """What KellerJordan/cifar10-airbench does that fits any network: label smoothing 0.2,
    crops after padding by 2 (not 4) and flip test-time augmentation at evaluation."""
    return Recipe(epochs=epochs, label_smoothing=0.2, crop_padding=2, flip_tta=True)


def proxy_recipe(epochs: int, name: str = DEFAULT_PROXY_RECIPE) -> Recipe:
    """The short proxy's recipe ``name`` (see :data:`PROXY_RECIPES`) for ``epochs``."""
    return PROXY_RECIPES[name](epochs)


def full_recipe(epochs: int) -> Recipe:
    """Seed 001's recipe: SGD momentum 0.9 with Nesterov, weight decay 5e-4, cosine schedule
    without restarts, label smoothing 0.1, mixup and cutmix, crop and flip, gradient
    clipping, EMA of the weights (0.999)."""
    return Recipe(
        epochs=epochs,
        batch_size=128,
        lr=0.1,
        warmup=0.02,
        schedule="cosine",
        mixup_alpha=0.2,
        cutmix_alpha=1.0,
        grad_clip=5.0,
        ema_decay=0.999,
    )
