"""Augmentation on whole batches on the device (airbench style): no per-image Python work."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def normalize(x: Tensor, mean: Tensor, std: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 (N, C, H, W) -> float, scaled to [0, 1] and standardised per channel."""
    x = x.to(dtype).div_(255)
    return x.sub_(mean.to(x)[None, :, None, None]).div_(std.to(x)[None, :, None, None])


def random_crop(x: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Pad every image by ``padding`` (zeros) and crop it back at a random offset.

    Offsets are drawn per image; the images sharing an offset are cropped together with one
    slice, first along rows then along columns: 2 * (2 * padding + 1) slice copies for the
    whole batch, and no per-pixel index tensors.
    """
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    shifts = 2 * padding + 1
    dy = torch.randint(0, shifts, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, shifts, (n,), device=x.device, generator=generator)
    rows = torch.empty(n, c, h, w + 2 * padding, dtype=x.dtype, device=x.device)
    for s in range(shifts):
        sel = (dy == s).nonzero().squeeze(1)
        if len(sel):
            rows[sel] = padded[sel, :, s : s + h]
    out = torch.empty_like(x)
    for s in range(shifts):
        sel = (dx == s).nonzero().squeeze(1)
        if len(sel):
            out[sel] = rows[sel, :, :, s : s + w]
    return out


def random_flip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Flip half of the images left-right."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)
