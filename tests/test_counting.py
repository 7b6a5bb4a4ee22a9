from __future__ import annotations

import optuna
import pytest

from nas.config import AttentionConfig
from nas.counting import count, whole_model_flops, whole_model_params
from nas.presets import PRESETS, preset
from nas.space import load_space
from tests.conftest import DEFAULT_SPACE, small_config


def test_enhanced_efficient_resnet_matches_seed_001() -> None:
    c = count(preset("enhanced-efficient-resnet"))
    assert abs(c.params - 4_913_705) / 4_913_705 < 0.01
    assert c.params < 5_000_000


def test_resnet20_matches_he_et_al() -> None:
    assert abs(count(preset("resnet20")).params - 269_722) / 269_722 < 0.02


@pytest.mark.parametrize("name", PRESETS.names())
def test_unit_counts_add_up_to_whole_model_fvcore(name: str) -> None:
    cfg = preset(name)
    c = count(cfg)
    assert c.params == whole_model_params(cfg)
    assert c.flops == whole_model_flops(cfg)
    assert sum(p.params for p in c.parts) == c.params
    assert sum(p.flops for p in c.parts) == c.flops


def test_random_space_points_add_up_too() -> None:
    space = load_space(DEFAULT_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    checked = 0
    while checked < 6:
        cfg = space.suggest(study.ask())
        if count(cfg, flops=False).params > 1_500_000:
            continue
        assert count(cfg).flops == whole_model_flops(cfg)
        checked += 1


@pytest.mark.parametrize(
    "kind",
    ["cbam", "mhsa", "se", "self_attn", "spatial", "hierarchical", "residual_attn", "channel"],
)
def test_attention_flops_are_the_difference_to_no_attention(kind: str) -> None:
    base = small_config()
    with_attn = small_config(AttentionConfig(type=kind, placement="after_stage", heads=2))
    c0, c1 = count(base), count(with_attn)
    assert c1.attention_flops > 0
    assert c1.flops == c0.flops + c1.attention_flops
    assert c1.params == c0.params + c1.attention_params
    assert len(c1.attention) == 3


def test_elementwise_and_reduction_ops_are_counted() -> None:
    # CBAM's own cost is pooling, an MLP on 1x1 maps, sigmoid and products: without the
    # extra handles fvcore would count only the convs of the MLP and the 7x7 conv.
    cfg = small_config(AttentionConfig(type="cbam", placement="after_last_stage", reduction=4))
    c = count(cfg)
    (module,) = c.attention
    channels, side = 16, 8
    mlp_and_conv = 2 * (2 * channels * (channels // 4)) + 2 * 49 * side * side
    assert module.flops > mlp_and_conv
    assert module.channels == channels


def test_counts_have_a_per_part_breakdown() -> None:
    c = count(preset("enhanced-efficient-resnet"))
    names = [p.name for p in c.parts]
    assert names == ["stem", "stage1", "stage2", "stage3", "stage4", "extra_conv", "head"]
    assert all(p.attention_modules == 2 for p in c.parts[1:5])
    d = c.to_dict()
    assert isinstance(d["params"], int) and isinstance(d["flops"], int)


def _resnet20_multiply_adds() -> int:
    """Multiply-adds of ResNet-20's convolutions and classifier at 32x32, from He et al.
    (2016), section 4.2, by hand: a 3x3 conv to 16 channels, then three stages of 2n = 6 3x3
    convs with 16, 32 and 64 filters on 32x32, 16x16 and 8x8 maps (the first conv of stages 2
    and 3 has stride 2 and half as many input channels; option-A shortcuts add nothing),
    then a 64 -> 10 linear layer: 40.55M, the "about 41M FLOPs" (multiply-adds) quoted for
    ResNet-20 on CIFAR-10. It is computed here from the paper's description, not by fvcore."""
    total = 3 * 16 * 9 * 32 * 32  # stem
    for c_in, c_out, size in ((16, 16, 32), (16, 32, 16), (32, 64, 8)):
        total += c_in * c_out * 9 * size * size  # first conv of the stage
        total += 5 * c_out * c_out * 9 * size * size  # the other five
    return total + 64 * 10


def test_resnet20_flops_match_the_published_multiply_adds() -> None:
    """fvcore's count of our ResNet-20 against an outside reference: its convolutions and
    classifier equal the paper's arithmetic exactly; the whole count (which adds batch norm)
    is within 1.5% of it."""
    import torch
    from fvcore.nn import FlopCountAnalysis

    from nas.models import build_model

    reference = _resnet20_multiply_adds()
    assert reference == 40_551_040
    model = build_model(preset("resnet20")).eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, 3, 32, 32))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    assert by_op["conv"] + by_op["linear"] == reference
    assert abs(count(preset("resnet20")).flops - reference) / reference < 0.015


def test_count_takes_the_dict_form_as_build_model_does() -> None:
    """An export's ``arch`` (a dict) is counted as its config is, not an AttributeError."""
    from nas import count, preset

    cfg = preset("resnet20-cbam")
    assert count(cfg.to_dict(), flops=False).params == count(cfg, flops=False).params
