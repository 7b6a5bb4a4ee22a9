"""Named architectures from the seed papers, as data.

Every preset is an :class:`~nas.config.ArchConfig` built by :func:`preset`; none is a class of
its own. Each is also a point of the default search space (``tests/space/test_space.py`` checks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nas.config import ArchConfig, AttentionConfig, StageConfig
from nas.registry import Registry


@dataclass(frozen=True)
class Preset:
    """A named architecture and where it comes from.

    Attributes:
        name: registry name.
        source: the paper or seed it reproduces.
        reported: what the source reports (parameters, accuracy), for comparison.
        make: builds the config for a data set's input channels, size and classes.
    """

    name: str
    source: str
    reported: str
    make: Callable[[int, int, int], ArchConfig]


PRESETS: Registry[Preset] = Registry("preset")


def _register(
    name: str, source: str, reported: str
) -> Callable[[Callable[[int, int, int], ArchConfig]], Callable[[int, int, int], ArchConfig]]:
    def decorator(
        make: Callable[[int, int, int], ArchConfig],
    ) -> Callable[[int, int, int], ArchConfig]:
        PRESETS.add(name, Preset(name, source, reported, make))
        return make

    return decorator


def preset(
    name: str, *, in_channels: int = 3, input_size: int = 32, num_classes: int = 10
) -> ArchConfig:
    """The config of preset ``name`` for the given input channels, size and classes.

    Raises:
        NasError: for an unknown name, listing the valid ones.
    """
    return PRESETS[name].make(in_channels, input_size, num_classes)


def _resnet20(in_ch: int, size: int, classes: int, attention: AttentionConfig) -> ArchConfig:
    return ArchConfig(
        stem_width=16,
        stages=(StageConfig(16, 3, 1), StageConfig(32, 3, 2), StageConfig(64, 3, 2)),
        shortcut="pad",
        attention=attention,
        in_channels=in_ch,
        input_size=size,
        num_classes=classes,
    )


@_register(
    "enhanced-efficient-resnet",
    "seed 001 (Krapa et al., EnhancedEfficientResNet)",
    "4,913,705 params; 95.30% CIFAR-10 validation after 500 epochs",
)
def _enhanced(in_ch: int, size: int, classes: int) -> ArchConfig:
    return ArchConfig(
        stem_width=31,
        stages=(
            StageConfig(62, 2, 1),
            StageConfig(124, 2, 2),
            StageConfig(248, 2, 2),
            StageConfig(248, 2, 1),
        ),
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
        in_channels=in_ch,
        input_size=size,
        num_classes=classes,
    )


@_register("resnet20", "He et al. 2016 (baseline of seed 003)", "0.27M params; 91-92% CIFAR-10")
def _plain20(in_ch: int, size: int, classes: int) -> ArchConfig:
    return _resnet20(in_ch, size, classes, AttentionConfig())


@_register("resnet20-cbam", "seed 003 (CNNtention), CBAM r=16", "about 90-91% CIFAR-10")
def _cbam20(in_ch: int, size: int, classes: int) -> ArchConfig:
    attn = AttentionConfig(type="cbam", placement="after_stage", join="weighted", reduction=16)
    return _resnet20(in_ch, size, classes, attn)


@_register(
    "resnet20-selfattn", "seed 003 (CNNtention), SAGAN self-attention", "about 90-91% CIFAR-10"
)
def _selfattn20(in_ch: int, size: int, classes: int) -> ArchConfig:
    attn = AttentionConfig(
        type="self_attn", placement="after_stage", join="weighted", reduction=8, scale=False
    )
    return _resnet20(in_ch, size, classes, attn)


@_register("resnet20-mhsa", "seed 003 (CNNtention), 8-head MHSA", "about 90-91% CIFAR-10")
def _mhsa20(in_ch: int, size: int, classes: int) -> ArchConfig:
    attn = AttentionConfig(type="mhsa", placement="after_stage", join="weighted", heads=8)
    return _resnet20(in_ch, size, classes, attn)


def _attention_net(in_ch: int, size: int, classes: int, repeats: tuple[int, ...]) -> ArchConfig:
    """Residual attention network for 32x32 input: 1 unit per stage, then m modules."""
    return ArchConfig(
        stem_width=32,
        block="bottleneck",
        stages=(
            StageConfig(128, 1, 1),
            StageConfig(256, 1, 2),
            StageConfig(512, 1, 2),
            StageConfig(1024, 3, 2),
        ),
        attention=AttentionConfig(
            type="residual_attn",
            placement="after_stage",
            join="multiply",
            mask_depth=2,
            mask_learning="arl",
            repeats=(*repeats, 0),
        ),
        in_channels=in_ch,
        input_size=size,
        num_classes=classes,
    )


@_register(
    "attention56",
    "seed 002 (Wang et al., Residual Attention Network)",
    "5.52% CIFAR-10 error (ARL)",
)
def _attention56(in_ch: int, size: int, classes: int) -> ArchConfig:
    return _attention_net(in_ch, size, classes, (1, 1, 1))


@_register(
    "attention92",
    "seed 002 (Wang et al., Residual Attention Network)",
    "4.99% CIFAR-10 error (ARL)",
)
def _attention92(in_ch: int, size: int, classes: int) -> ArchConfig:
    return _attention_net(in_ch, size, classes, (1, 2, 3))


@_register(
    "resnet18-hierarchical",
    "seed 004 (ResNet-18 + self-adapting hierarchical attention)",
    "83.2% CIFAR-100 from ImageNet weights (trained from scratch here)",
)
def _resnet18_hier(in_ch: int, size: int, classes: int) -> ArchConfig:
    return ArchConfig(
        stem_width=64,
        stages=(
            StageConfig(64, 2, 1),
            StageConfig(128, 2, 2),
            StageConfig(256, 2, 2),
            StageConfig(512, 2, 2),
        ),
        attention=AttentionConfig(
            type="hierarchical", placement="after_last_stage", join="multiply", reduction=16
        ),
        in_channels=in_ch,
        input_size=size,
        num_classes=classes,
    )
