"""What proxies and winners train with: the training context and the one trainer factory.

A :class:`TrainingContext` holds everything the trials of one study share (data on the host,
the split, the normalisation, the recipe, the device and the study's data seed). A search's
proxies, a fidelity panel's jobs and the fully trained winners all get their trainer from
:func:`make_trainer`, so they train with one code path and differ only in the data they hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from nas.config import ArchConfig
from nas.data import ImageData, Split
from nas.models import build_model
from nas.training import Trainer, proxy_recipe
from nas.training.recipe import Recipe, scaled_lr


@dataclass(frozen=True)
class ProxySpec:
    """How a proxy trains, as typed data (the ``proxy_*`` settings of a search, or one rung
    of a fidelity ladder).

    Attributes:
        epochs: passes over the subset.
        subset: training images (None: every image outside the validation split).
        val: validation images scored per epoch (None: the whole validation split).
        batch_size: images per step (None: :func:`proxy_batch_size` of the subset).
        lr: peak learning rate for 256 images per step, scaled to the batch.
        recipe: the proxy recipe's name (:data:`nas.training.recipe.PROXY_RECIPES`).
        val_fraction: share of the training images held out for validation.
    """

    epochs: int
    subset: int | None
    val: int | None
    batch_size: int | None
    lr: float
    recipe: str
    val_fraction: float = 0.1


@dataclass
class TrainingContext:
    """What every trial of a study shares: data on the host, split, normalisation, recipe,
    device, and the study's data seed (one data order and augmentation stream for every
    trial)."""

    data: ImageData
    split: Split
    mean: torch.Tensor
    std: torch.Tensor
    device: torch.device
    recipe: Recipe
    data_seed: int


def proxy_batch_size(n_images: int) -> int:
    """About 60 steps per epoch, between 32 and 256 images per step (a power of two)."""
    size = 32
    while size * 2 <= min(256, n_images // 60):
        size *= 2
    return size


def proxy_context(
    spec: ProxySpec, data: ImageData, device: torch.device, data_seed: int
) -> TrainingContext:
    """Split, normalisation and recipe of a proxy; ``data_seed`` is the study's, shared by
    every trial and every worker."""
    from nas.data import proxy_split

    split = proxy_split(len(data.train_y), spec.subset, spec.val, spec.val_fraction)
    mean, std = data.mean_std()
    batch = spec.batch_size or proxy_batch_size(len(split.train))
    recipe = proxy_recipe(spec.epochs, spec.recipe).replace(
        batch_size=batch, lr=scaled_lr(spec.lr, batch), warmup=0.2
    )
    return TrainingContext(data, split, mean, std, device, recipe, data_seed)


def full_context(
    data: ImageData, recipe: Recipe, device: torch.device, data_seed: int, val_fraction: float
) -> TrainingContext:
    """The context of full training: every training image outside the validation split."""
    from nas.data import validation_split

    mean, std = data.mean_std()
    split = validation_split(len(data.train_y), val_fraction)
    return TrainingContext(data, split, mean, std, device, recipe, data_seed)


def init_seed(seed: int, trial_number: int) -> int:
    """The seed of trial ``trial_number``'s initial weights."""
    return seed * 100_003 + trial_number


def make_trainer(
    ctx: TrainingContext,
    arch: ArchConfig,
    seed: int,
    *,
    fault: str | None = None,
    checkpoint: Path | None = None,
    compile: bool = False,
) -> Trainer:
    """The trainer of ``arch`` in ``ctx``: initial weights from ``seed``, data order and
    augmentation from the context's data seed, scored on the validation split."""
    torch.manual_seed(seed)
    return Trainer(
        build_model(arch),
        ctx.recipe,
        train_x=ctx.data.train_x[ctx.split.train],
        train_y=ctx.data.train_y[ctx.split.train],
        eval_x=ctx.data.train_x[ctx.split.val],
        eval_y=ctx.data.train_y[ctx.split.val],
        mean=ctx.mean,
        std=ctx.std,
        num_classes=ctx.data.num_classes,
        device=ctx.device,
        data_seed=ctx.data_seed,
        fault=fault,
        checkpoint=checkpoint,
        compile=compile,
    )


def candidate_zero_cost(
    ctx: TrainingContext, model: torch.nn.Module, *, params: int, flops: int | None
) -> dict[str, float | None]:
    """Zero-cost scores of an untrained ``model`` on the study's fixed batch (the first
    :data:`~nas.proxy.zero_cost.BATCH` training images), JSON-ready (non-finite: None)."""
    from nas.data.augment import normalize
    from nas.proxy.zero_cost import BATCH, zero_cost_scores
    from nas.training.trainer import memory_format

    idx = ctx.split.train[:BATCH]
    x = normalize(ctx.data.train_x[idx].to(ctx.device), ctx.mean, ctx.std)
    x = x.contiguous(memory_format=memory_format(ctx.device))  # as the trainer feeds it
    y = ctx.data.train_y[idx].to(ctx.device)
    scores = zero_cost_scores(model, x, y, params=params, flops=flops)  # scores a copy
    return {k: (v if math.isfinite(v) else None) for k, v in scores.items()}
