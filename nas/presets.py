"""Named architectures from the seed papers, as data.

Every preset is an :class:`~nas.config.ArchConfig` built by :func:`preset`; none is a class of
its own. Each is also a point of the default search space (``tests/space/test_space.py`` checks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas.config import ArchConfig, AttentionConfig, StageConfig
from nas.registry import Registry


@dataclass(frozen=True)
class Preset:
    """A named architecture and where it comes from.

    Attributes:
        name: registry name.
        source: the paper or seed it reproduces.
        reported: what the source reports (parameters, accuracy), for comparison.
        arch: the architecture for 3-channel 32x32 images and 10 classes; :func:`preset`
            sets a data set's input channels, size and classes on it.
    """

    name: str
    source: str
    reported: str
    arch: ArchConfig


PRESETS: Registry[Preset] = Registry("preset")


def preset(
    name: str, *, in_channels: int = 3, input_size: int = 32, num_classes: int = 10
) -> ArchConfig:
    """The config of preset ``name`` for the given input channels, size and classes.

    Raises:
        NasError: for an unknown name, listing the valid ones.
    """
    return PRESETS[name].arch.replace(
        in_channels=in_channels, input_size=input_size, num_classes=num_classes
    )


def _stages(*layout: tuple[int, int, int]) -> tuple[StageConfig, ...]:
    """Stages from (width, blocks, stride) triples."""
    return tuple(StageConfig(*stage) for stage in layout)


def _resnet20(attention: AttentionConfig) -> ArchConfig:
    return ArchConfig(
        stem_width=16,
        stages=_stages((16, 3, 1), (32, 3, 2), (64, 3, 2)),
        shortcut="pad",
        attention=attention,
    )


def _cnntention(name: str, what: str, type: str, **knobs: Any) -> Preset:
    """A seed 003 preset: ResNet-20 with an attention module after each stage, weighted join."""
    return Preset(
        name,
        f"seed 003 (CNNtention), {what}",
        "about 90-91% CIFAR-10",
        _resnet20(AttentionConfig(type=type, placement="after_stage", join="weighted", **knobs)),
    )


def _residual_attention(name: str, reported: str, repeats: tuple[int, ...]) -> Preset:
    """A seed 002 preset: the residual attention network for 32x32 input, one unit per stage,
    then ``repeats`` attention modules after each of the first three stages."""
    return Preset(
        name,
        "seed 002 (Wang et al., Residual Attention Network)",
        reported,
        ArchConfig(
            stem_width=32,
            block="bottleneck",
            stages=_stages((128, 1, 1), (256, 1, 2), (512, 1, 2), (1024, 3, 2)),
            attention=AttentionConfig(
                type="residual_attn",
                placement="after_stage",
                join="multiply",
                mask_depth=2,
                mask_learning="arl",
                repeats=(*repeats, 0),
            ),
        ),
    )


_ENHANCED_EFFICIENT_RESNET = ArchConfig(
    stem_width=31,
    stages=_stages((62, 2, 1), (124, 2, 2), (248, 2, 2), (248, 2, 1)),
    extra_conv=1,
    dropout=0.3,
    attention=AttentionConfig(
        type="cbam",
        placement="in_block",
        join="multiply",
        reduction=16,
        min_hidden=4,
        kernel_size=7,
    ),
)

_RESNET18_HIERARCHICAL = ArchConfig(
    stem_width=64,
    stages=_stages((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)),
    attention=AttentionConfig(
        type="hierarchical", placement="after_last_stage", join="multiply", reduction=16
    ),
)

# In the order ``nas arch presets`` lists them.
for _preset in (
    Preset(
        "enhanced-efficient-resnet",
        "seed 001 (Krapa et al., EnhancedEfficientResNet)",
        "4,913,705 params; 95.30% CIFAR-10 validation after 500 epochs",
        _ENHANCED_EFFICIENT_RESNET,
    ),
    Preset(
        "resnet20",
        "He et al. 2016 (baseline of seed 003)",
        "0.27M params; 91-92% CIFAR-10",
        _resnet20(AttentionConfig()),
    ),
    _cnntention("resnet20-cbam", "CBAM r=16", "cbam", reduction=16),
    _cnntention("resnet20-selfattn", "SAGAN self-attention", "self_attn", reduction=8, scale=False),
    _cnntention("resnet20-mhsa", "8-head MHSA", "mhsa", heads=8),
    _residual_attention("attention56", "5.52% CIFAR-10 error (ARL)", (1, 1, 1)),
    _residual_attention("attention92", "4.99% CIFAR-10 error (ARL)", (1, 2, 3)),
    Preset(
        "resnet18-hierarchical",
        "seed 004 (ResNet-18 + self-adapting hierarchical attention)",
        "83.2% CIFAR-100 from ImageNet weights (trained from scratch here)",
        _RESNET18_HIERARCHICAL,
    ),
):
    PRESETS.add(_preset.name, _preset)
