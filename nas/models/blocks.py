"""Residual blocks. Each takes an optional attention module applied before the skip addition."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from nas.config import BOTTLENECK_EXPANSION
from nas.registry import Registry

#: Residual block classes by name: ``BLOCKS[name](in_ch, out_ch, stride, shortcut, attn)``.
BLOCKS: Registry[type[nn.Module]] = Registry("block type")


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """Conv (no bias, 'same' padding) followed by batch norm."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
    )


class PadShortcut(nn.Module):
    """He et al.'s option A: strided identity with zero-padded extra channels, no parameters."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"a padding shortcut cannot narrow {in_ch} -> {out_ch} channels")
        self.stride = stride
        self.extra = out_ch - in_ch

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra={self.extra}"

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            x = F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return x


#: Shortcut kinds for blocks that change the shape: ``SHORTCUTS[kind](in_ch, out_ch, stride)``.
SHORTCUTS: Registry[Callable[[int, int, int], nn.Module]] = Registry("shortcut")
SHORTCUTS.add("conv", lambda in_ch, out_ch, stride: conv_bn(in_ch, out_ch, 1, stride))
SHORTCUTS.add("pad", PadShortcut)


def make_shortcut(kind: str, in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """Identity when shapes match, else the shortcut ``kind`` (1x1 conv + BN, or padding)."""
    if in_ch == out_ch and stride == 1:
        return nn.Identity()
    return SHORTCUTS[kind](in_ch, out_ch, stride)


class ResidualBlock(nn.Module):
    """out = relu(attn(body(x)) + shortcut(x)); subclasses build ``body`` in :meth:`make_body`."""

    body: nn.Module

    def __init__(
        self, in_ch: int, out_ch: int, stride: int, shortcut: str, attn: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.out_channels = out_ch
        self.stride = stride
        self.shortcut = make_shortcut(shortcut, in_ch, out_ch, stride)
        self.attn = attn
        body = self.make_body(in_ch, out_ch, stride)
        if body is not None:
            self.body = body

    def make_body(self, in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
        """The residual branch from ``in_ch`` to ``out_ch`` channels (None: the subclass sets
        ``body`` itself)."""
        return None

    def output_side(self, side: int) -> int:
        """Spatial side of the output for an input of side ``side``."""
        return (side - 1) // self.stride + 1

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        if self.attn is not None:
            out = self.attn(out)
        return F.relu(out + self.shortcut(x))


@BLOCKS.register("basic")
class BasicBlock(ResidualBlock):
    """Two 3x3 convs (He et al.)."""

    def make_body(self, in_ch: int, out_ch: int, stride: int) -> nn.Module:
        return nn.Sequential(
            conv_bn(in_ch, out_ch, 3, stride), nn.ReLU(inplace=True), conv_bn(out_ch, out_ch, 3)
        )


@BLOCKS.register("bottleneck")
class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand; the inner width is ``out_ch // 4``."""

    def make_body(self, in_ch: int, out_ch: int, stride: int) -> nn.Module:
        inner = out_ch // BOTTLENECK_EXPANSION
        return nn.Sequential(
            conv_bn(in_ch, inner, 1),
            nn.ReLU(inplace=True),
            conv_bn(inner, inner, 3, stride),
            nn.ReLU(inplace=True),
            conv_bn(inner, out_ch, 1),
        )
