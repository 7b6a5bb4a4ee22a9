"""Seed 004's self-adapting hierarchical spatial attention module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.models.attention._registry import ATTENTION, hidden_units


@ATTENTION.register("hierarchical")
class HierarchicalAttention(nn.Module):
    """Multi-scale, contextual and local-variation maps fused into one spatial gate.

    * hierarchy: two stride-2 3x3 convs give maps at 1/2 and 1/4 resolution (C/r channels
      each); a sigmoid each, brought back to full size by bilinear interpolation;
    * contextual relevance: a 3x3 conv to one channel, sigmoid;
    * local variation: a 3x3 conv to one channel, then the standard deviation over each
      3x3 neighbourhood, sigmoid;
    * all concatenated, a 1x1 conv and a sigmoid give the map that scales F.

    Args:
        channels: C, channels of F.
        reduction: r; the hierarchy maps have C/r channels.
        min_hidden: floor on those channels.
    """

    def __init__(self, channels: int, *, reduction: int = 16, min_hidden: int = 1) -> None:
        super().__init__()
        hidden = hidden_units(channels, reduction, min_hidden)
        self.coarse1 = nn.Conv2d(channels, hidden, 3, stride=2, padding=1)
        self.coarse2 = nn.Conv2d(hidden, hidden, 3, stride=2, padding=1)
        self.relevance = nn.Conv2d(channels, 1, 3, padding=1)
        self.variation = nn.Conv2d(channels, 1, 3, padding=1)
        self.fuse = nn.Conv2d(2 * hidden + 2, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        c1 = self.coarse1(x)
        c2 = self.coarse2(c1)
        up1 = F.interpolate(torch.sigmoid(c1), size=size, mode="bilinear", align_corners=False)
        up2 = F.interpolate(torch.sigmoid(c2), size=size, mode="bilinear", align_corners=False)
        relevance = torch.sigmoid(self.relevance(x))
        v = self.variation(x)
        mean = F.avg_pool2d(v, 3, stride=1, padding=1, count_include_pad=False)
        sq_mean = F.avg_pool2d(v * v, 3, stride=1, padding=1, count_include_pad=False)
        variation = torch.sigmoid(torch.sqrt(F.relu(sq_mean - mean * mean) + 1e-6))
        gate = torch.sigmoid(self.fuse(torch.cat([up1, up2, relevance, variation], dim=1)))
        return x * gate
