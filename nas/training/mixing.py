"""Mixup and CutMix on a whole batch (seed 001's recipe uses both)."""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import Tensor


def mix_batch(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    mixup_alpha: float,
    cutmix_alpha: float,
    rng: random.Random,
) -> tuple[Tensor, Tensor]:
    """Mix each image with another of the batch; returns images and soft targets.

    With both alphas set, each batch uses CutMix or mixup with equal odds. lambda is drawn
    from Beta(alpha, alpha); CutMix pastes a box of area (1 - lambda) and sets lambda to the
    exact kept fraction.
    """
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = rng.betavariate(alpha, alpha)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(rng.getrandbits(62)))
    perm = perm.to(x.device)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = rng.randrange(h), rng.randrange(w)
        y1, y2 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x1, x2 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
        lam = 1 - (y2 - y1) * (x2 - x1) / (h * w)
    else:
        x = x * lam + x[perm] * (1 - lam)
    onehot = F.one_hot(y, num_classes).to(x.dtype)
    return x, onehot * lam + onehot[perm] * (1 - lam)
