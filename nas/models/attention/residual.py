"""The residual attention module of Wang et al. (seed 002)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.models.attention._registry import ATTENTION


def _bn_relu_conv(in_ch: int, out_ch: int, kernel: int) -> list[nn.Module]:
    """Pre-activation conv: batch norm, ReLU, then a conv (no bias, 'same' padding)."""
    return [
        nn.BatchNorm2d(in_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
    ]


class PreActUnit(nn.Module):
    """The pre-activation bottleneck residual unit the module is made of (C -> C/4 -> C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(channels // 4, 1)
        self.body = nn.Sequential(
            *_bn_relu_conv(channels, inner, 1),
            *_bn_relu_conv(inner, inner, 3),
            *_bn_relu_conv(inner, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.body(x)
        return out


@ATTENTION.register("residual_attn")
class ResidualAttention(nn.Module):
    """Trunk T(x) of residual units plus a bottom-up/top-down soft mask M(x).

    With the paper's p=1, t=2, r=1: one unit before, two trunk units, one unit after. The
    mask branch max-pools ``mask_depth`` times (a unit at each scale, a skip unit at each
    intermediate scale), interpolates back up level by level, then 1x1 convs and a sigmoid.
    Output: (1 + M) * T ("attention residual learning", ``arl``) or M * T (``nal``).

    Args:
        channels: C, channels of F.
        mask_depth: number of max-pool down-samplings in the mask branch.
        mask_learning: ``arl`` or ``nal``.
    """

    def __init__(self, channels: int, *, mask_depth: int = 1, mask_learning: str = "arl") -> None:
        super().__init__()
        if mask_learning not in ("arl", "nal"):
            raise ValueError(f"mask_learning must be 'arl' or 'nal', got {mask_learning!r}")
        self.residual_learning = mask_learning == "arl"
        self.pre = PreActUnit(channels)
        self.trunk = nn.Sequential(PreActUnit(channels), PreActUnit(channels))
        self.down = nn.ModuleList(PreActUnit(channels) for _ in range(mask_depth))
        self.skips = nn.ModuleList(PreActUnit(channels) for _ in range(mask_depth - 1))
        self.bottom = PreActUnit(channels)
        self.up = nn.ModuleList(PreActUnit(channels) for _ in range(mask_depth - 1))
        self.mask_head = nn.Sequential(
            *_bn_relu_conv(channels, channels, 1), *_bn_relu_conv(channels, channels, 1)
        )
        self.post = PreActUnit(channels)

    def extra_repr(self) -> str:
        return f"mask_learning={'arl' if self.residual_learning else 'nal'}"

    def forward(self, x: Tensor) -> Tensor:
        x = self.pre(x)
        trunk = self.trunk(x)
        sizes, skips = [], []
        m = x
        for i, unit in enumerate(self.down):
            sizes.append(m.shape[-2:])
            m = unit(F.max_pool2d(m, 3, stride=2, padding=1))
            if i < len(self.skips):
                skips.append(self.skips[i](m))
        m = self.bottom(m)
        for i in reversed(range(len(sizes))):
            m = F.interpolate(m, size=sizes[i], mode="bilinear", align_corners=False)
            if i > 0:
                m = self.up[i - 1](m + skips[i - 1])
        mask = torch.sigmoid(self.mask_head(m))
        out = (1 + mask) * trunk if self.residual_learning else mask * trunk
        result: Tensor = self.post(out)
        return result
