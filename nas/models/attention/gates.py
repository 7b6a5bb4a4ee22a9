"""Gating attention: squeeze-and-excitation and the two halves of CBAM.

Each module multiplies F by a sigmoid map, so A(F) = sigmoid(...) * F keeps F's shape.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nas.models.attention._registry import ATTENTION, hidden_units


def _mlp(channels: int, hidden: int) -> nn.Sequential:
    """The C -> hidden -> C bottleneck MLP, as 1x1 convs on a (N, C, 1, 1) descriptor."""
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, channels, 1),
    )


@ATTENTION.register("se")
class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al.): sigmoid(MLP(avgpool F)) scales the channels.

    Args:
        channels: C, channels of F.
        reduction: r; the MLP has C/r hidden units.
        min_hidden: floor on the hidden units.
    """

    def __init__(self, channels: int, *, reduction: int = 16, min_hidden: int = 1) -> None:
        super().__init__()
        self.mlp = _mlp(channels, hidden_units(channels, reduction, min_hidden))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)))


@ATTENTION.register("channel")
class ChannelGate(nn.Module):
    """CBAM's channel half: sigmoid(MLP(avgpool F) + MLP(maxpool F)), one shared MLP.

    Args:
        channels: C, channels of F.
        reduction: r; the shared MLP has C/r hidden units.
        min_hidden: floor on the hidden units (4 in seed 001).
    """

    def __init__(self, channels: int, *, reduction: int = 16, min_hidden: int = 1) -> None:
        super().__init__()
        self.mlp = _mlp(channels, hidden_units(channels, reduction, min_hidden))

    def forward(self, x: Tensor) -> Tensor:
        avg = self.mlp(x.mean((2, 3), keepdim=True))
        mx = self.mlp(x.amax((2, 3), keepdim=True))
        return x * torch.sigmoid(avg + mx)


@ATTENTION.register("spatial")
class SpatialGate(nn.Module):
    """CBAM's spatial half: sigmoid(conv_kxk([mean_c F ; max_c F])) scales the positions.

    Args:
        channels: C, channels of F (the map itself does not depend on C).
        kernel_size: k of the k x k conv (3, 5 or 7; 7 in seeds 001 and 003).
    """

    def __init__(self, channels: int, *, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


@ATTENTION.register("cbam")
class CBAM(nn.Module):
    """CBAM (Woo et al.): :class:`ChannelGate` then :class:`SpatialGate`, in sequence.

    Args:
        channels: C, channels of F.
        reduction: r of the channel half.
        min_hidden: floor on the channel half's hidden units.
        kernel_size: k of the spatial half.
    """

    def __init__(
        self, channels: int, *, reduction: int = 16, min_hidden: int = 1, kernel_size: int = 7
    ) -> None:
        super().__init__()
        self.channel = ChannelGate(channels, reduction=reduction, min_hidden=min_hidden)
        self.spatial = SpatialGate(channels, kernel_size=kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.spatial(self.channel(x))
        return out
