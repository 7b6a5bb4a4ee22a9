"""An architecture as a plan: the sequence of units the network is made of.

Each unit is described by a small frozen spec (stem, residual block, attention module, extra
conv, head) that knows how to build itself. :class:`~nas.models.network.Network` builds its
modules from the plan, and :mod:`nas.counting` counts unit by unit, memoising fvcore's
result per spec, so two candidates that share a unit share its count.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

from torch import nn

from nas.config import ArchConfig, AttentionConfig, stage_slots
from nas.models.blocks import BLOCKS, conv_bn
from nas.models.heads import Head
from nas.models.joins import make_joined_attention

Shape = tuple[int, int, int]  # (channels, height, width)


class _SameShape:
    """A unit whose output has the shape of its input."""

    def out_shape(self, shape: Shape) -> Shape:
        return shape


@dataclass(frozen=True)
class StemSpec:
    """3x3 conv, BN, ReLU from the input channels to the stem width."""

    in_channels: int
    width: int

    def build(self) -> nn.Module:
        return nn.Sequential(conv_bn(self.in_channels, self.width, 3), nn.ReLU(inplace=True))

    def out_shape(self, shape: Shape) -> Shape:
        return (self.width, shape[1], shape[2])


@dataclass(frozen=True)
class AttentionSpec(_SameShape):
    """An attention module in its join, for ``channels`` channels (placement-independent)."""

    attention: AttentionConfig
    channels: int

    def build(self) -> nn.Module:
        module = make_joined_attention(self.attention, self.channels)
        assert module is not None, "no unit is planned for attention 'none'"
        return module


@dataclass(frozen=True)
class BlockSpec:
    """A residual block, with the attention it holds before its skip addition, if any."""

    block: str
    in_channels: int
    out_channels: int
    stride: int
    shortcut: str
    attention: AttentionSpec | None = None

    def build(self) -> nn.Module:
        attn = self.attention.build() if self.attention else None
        return BLOCKS[self.block](
            self.in_channels, self.out_channels, self.stride, self.shortcut, attn
        )

    def out_shape(self, shape: Shape) -> Shape:
        height, width = ((s - 1) // self.stride + 1 for s in shape[1:])
        return (self.out_channels, height, width)

    def bare(self) -> BlockSpec:
        """The same block without its attention."""
        return dataclasses.replace(self, attention=None)


@dataclass(frozen=True)
class ExtraConvSpec(_SameShape):
    """Conv k x k, BN, ReLU at the last width, before pooling (seed 001's extra conv)."""

    channels: int
    kernel: int

    def build(self) -> nn.Module:
        return nn.Sequential(
            conv_bn(self.channels, self.channels, self.kernel), nn.ReLU(inplace=True)
        )


@dataclass(frozen=True)
class HeadSpec:
    """Global average pooling, dropout, linear classifier."""

    channels: int
    dropout: float
    num_classes: int

    def build(self) -> nn.Module:
        return Head(self.channels, self.dropout, self.num_classes)

    def out_shape(self, shape: Shape) -> Shape:
        return (self.num_classes, 1, 1)


UnitSpec = Union[StemSpec, BlockSpec, AttentionSpec, ExtraConvSpec, HeadSpec]  # noqa: UP007


@dataclass(frozen=True)
class Unit:
    """One planned unit: its module path in the network, its breakdown row, spec and input.

    Attributes:
        name: module path, e.g. ``stem``, ``stages.1.0`` or ``head``.
        part: the breakdown row it belongs to (``stem``, ``stage2``, ``extra_conv``, ``head``).
        stage: 0-based stage index, or None outside the stages.
        spec: what to build.
        in_shape: (channels, height, width) of its input.
    """

    name: str
    part: str
    stage: int | None
    spec: UnitSpec
    in_shape: Shape


def plan(cfg: ArchConfig) -> list[Unit]:
    """The units of ``cfg`` in forward order, each with its input shape."""
    attention = dataclasses.replace(cfg.attention, placement="in_block", repeats=())
    units: list[Unit] = []
    shape: Shape = (cfg.in_channels, cfg.input_size, cfg.input_size)

    def add(name: str, part: str, stage: int | None, spec: UnitSpec) -> None:
        nonlocal shape
        units.append(Unit(name, part, stage, spec, shape))
        shape = spec.out_shape(shape)

    add("stem", "stem", None, StemSpec(cfg.in_channels, cfg.stem_width))
    for i, (stage, slots) in enumerate(zip(cfg.stages, stage_slots(cfg), strict=True)):
        part, j, stage_attention = f"stage{i + 1}", 0, attention.at_stage(i)
        for b in range(stage.blocks):
            inner = AttentionSpec(stage_attention, stage.width) if slots.in_block else None
            spec = BlockSpec(
                cfg.block, shape[0], stage.width, stage.stride if b == 0 else 1, cfg.shortcut, inner
            )
            add(f"stages.{i}.{j}", part, i, spec)
            j += 1
            if slots.after_block:
                add(f"stages.{i}.{j}", part, i, AttentionSpec(stage_attention, stage.width))
                j += 1
        for _ in range(slots.after_stage):
            add(f"stages.{i}.{j}", part, i, AttentionSpec(stage_attention, stage.width))
            j += 1
    if cfg.extra_conv:
        add("extra", "extra_conv", None, ExtraConvSpec(shape[0], cfg.extra_conv))
    add("head", "head", None, HeadSpec(shape[0], cfg.dropout, cfg.num_classes))
    return units
