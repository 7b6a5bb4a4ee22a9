"""Every registered attention module x join x placement builds, trains and counts right.

The test is parametrized over the registries, so registering a new module tests it.
"""

from __future__ import annotations

import re

import pytest
import torch
from fvcore.nn import parameter_count

from nas.config import ATTENTION_KNOBS, PLACEMENTS, ArchConfig, AttentionConfig, attention_knobs
from nas.errors import ConfigError
from nas.models import ATTENTION, JOINS, build_model, make_attention
from nas.models.attention import signature_knobs
from nas.models.attention.residual import ResidualAttention
from tests.conftest import small_config

ATTENTIONS = ATTENTION.names()


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("join", JOINS.names())
@pytest.mark.parametrize("kind", ATTENTIONS)
def test_every_combination_builds_trains_and_counts(kind: str, join: str, placement: str) -> None:
    torch.manual_seed(0)
    cfg = small_config(
        AttentionConfig(type=kind, join=join, placement=placement, heads=4, reduction=4)
    )
    model = build_model(cfg)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 10)
    out.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert parameter_count(model)[""] == sum(p.numel() for p in model.parameters())
    with torch.device("meta"):
        meta = build_model(cfg, device="meta")
    assert parameter_count(meta)[""] == sum(p.numel() for p in model.parameters())
    n_attention = sum(isinstance(m, tuple(JOINS[j] for j in JOINS)) for m in model.modules())
    assert (n_attention == 0) == (kind == "none")


@pytest.mark.parametrize("kind", [k for k in ATTENTIONS if k != "none"])
def test_modules_keep_the_feature_shape(kind: str) -> None:
    module = make_attention(AttentionConfig(type=kind, heads=2), 24)
    x = torch.randn(2, 24, 7, 5)
    assert module(x).shape == x.shape


@pytest.mark.parametrize("kind", [k for k in ATTENTIONS if k != "none"])
def test_knobs_are_attention_config_fields(kind: str) -> None:
    fields = set(AttentionConfig.__dataclass_fields__)
    assert set(attention_knobs(kind)) <= fields


def test_weighted_join_starts_as_identity() -> None:
    module = JOINS["weighted"](make_attention(AttentionConfig(type="mhsa", heads=2), 8))
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(module(x), x)
    assert module.gain.item() == 0.0


def test_residual_join_adds_the_features() -> None:
    attn = make_attention(AttentionConfig(type="se"), 16)
    x = torch.randn(2, 16, 4, 4)
    assert torch.allclose(JOINS["residual"](attn)(x), x + attn(x))
    assert torch.allclose(JOINS["multiply"](attn)(x), attn(x))


def test_cbam_is_channel_then_spatial() -> None:
    cbam = make_attention(AttentionConfig(type="cbam", reduction=4, kernel_size=3), 16)
    x = torch.randn(2, 16, 6, 6)
    assert torch.allclose(cbam(x), cbam.spatial(cbam.channel(x)))


def test_channel_gate_hidden_floor() -> None:
    gate = make_attention(AttentionConfig(type="channel", reduction=16, min_hidden=4), 32)
    assert gate.mlp[0].out_channels == 4  # 32 // 16 = 2, floored at 4


def test_self_attention_scale_switch_changes_the_output() -> None:
    torch.manual_seed(0)
    scaled = make_attention(AttentionConfig(type="self_attn", scale=True, reduction=1), 16)
    unscaled = make_attention(AttentionConfig(type="self_attn", scale=False, reduction=1), 16)
    unscaled.load_state_dict(scaled.state_dict())
    x = torch.randn(1, 16, 4, 4)
    assert not torch.allclose(scaled(x), unscaled(x))


def test_residual_attention_arl_and_nal_differ_only_in_the_mask_use() -> None:
    torch.manual_seed(0)
    arl = make_attention(AttentionConfig(type="residual_attn", mask_learning="arl"), 8).eval()
    nal = make_attention(AttentionConfig(type="residual_attn", mask_learning="nal"), 8).eval()
    nal.load_state_dict(arl.state_dict())
    x = torch.randn(1, 8, 8, 8)
    assert not torch.allclose(arl(x), nal(x))


def test_registry_refuses_duplicates_and_lists_valid_names() -> None:
    from nas.errors import NasError

    with pytest.raises(KeyError):
        ATTENTION.add("se", object)  # type: ignore[arg-type]
    with pytest.raises(NasError, match="valid: none, "):
        ATTENTION["squeeze"]


def test_every_declared_attention_type_is_registered_with_its_knobs() -> None:
    assert ATTENTION.names() == list(ATTENTION_KNOBS)
    for name in ATTENTION_KNOBS:
        assert set(signature_knobs(ATTENTION[name])) == set(ATTENTION_KNOBS[name])


def test_registering_undeclared_type_or_other_knobs_fails() -> None:
    class Odd(torch.nn.Module):
        def __init__(self, channels: int, *, reduction: int = 16) -> None:
            super().__init__()

    with pytest.raises(KeyError, match="not declared"):
        ATTENTION.add("odd", Odd)
    with pytest.raises(KeyError, match="declares"):
        ATTENTION.add("mhsa", Odd)  # mhsa takes heads, not reduction
    assert "odd" not in ATTENTION


def test_config_layer_imports_no_model_code() -> None:
    """Configs are the lowest layer: validating one imports neither the models nor torch."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from nas.config import ArchConfig, AttentionConfig, StageConfig\n"
        "ArchConfig(stages=(StageConfig(8, 1),), attention=AttentionConfig(type='mhsa', "
        "heads=2, placement='after_stage'))\n"
        "bad = [m for m in sys.modules if m.startswith(('nas.models', 'torch'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mhsa_attends_through_the_fused_kernel_with_the_same_result() -> None:
    """Transposed views sent scaled_dot_product_attention down its math path on the CPU,
    which holds batch x heads x HW x HW scores (it ran out of memory scoring 1000 images
    over 32x32 positions) and ran 3x slower; contiguous inputs get the fused kernel."""
    import math

    import torch.nn.functional as F

    from nas.models.attention.self_attention import MultiHeadSelfAttention, _positions

    torch.manual_seed(0)
    m = MultiHeadSelfAttention(32, heads=4).eval()
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        q, k, v = (_positions(t, 4) for t in m.qkv(x).chunk(3, dim=1))
        assert q.is_contiguous() and torch._fused_sdp_choice(q, k, v) != 0  # not math (0)
        strided = [t.transpose(2, 3).contiguous().transpose(2, 3) for t in (q, k, v)]
        assert torch._fused_sdp_choice(*strided) == 0  # what it was before
        fused = F.scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(8))
        math_path = F.scaled_dot_product_attention(*strided, scale=1 / math.sqrt(8))
    assert torch.allclose(fused, math_path, atol=1e-5)


def test_residual_attention_pools_each_stage_to_its_own_depth() -> None:
    """Seed 002's ImageNet Attention-56: the soft masks of stages 1-3 pool 3/2/1 times, down
    to the last stage's 7x7 (one depth for all cannot reach its 31.9M parameters)."""
    from nas.counting import count

    def attention56(depth: object) -> ArchConfig:
        return ArchConfig.from_dict({
            "stem_width": 64, "block": "bottleneck", "num_classes": 1000, "input_size": 56,
            "stages": [{"width": w, "blocks": b, "stride": s}
                       for w, b, s in ((256, 1, 1), (512, 1, 2), (1024, 1, 2), (2048, 3, 2))],
            "attention": {"type": "residual_attn", "placement": "after_stage",
                          "repeats": [1, 1, 1, 0], "mask_depth": depth},
        })  # fmt: skip

    cfg = attention56([3, 2, 1, 1])
    model = build_model(cfg)
    pools = [len(m.down) for m in model.modules() if isinstance(m, ResidualAttention)]
    assert pools == [3, 2, 1]
    assert model(torch.zeros(1, 3, 56, 56)).shape == (1, 1000)
    stem_7x7 = 64 * 3 * (7 * 7 - 3 * 3)  # the paper's stem, where nas has a 3x3 conv
    params = count(cfg, flops=False).params + stem_7x7
    assert abs(params / 31.9e6 - 1) < 0.01, params
    assert abs((count(attention56(1), flops=False).params + stem_7x7) / 31.9e6 - 1) > 0.03
    # a stage without modules has no depth to give; one depth everywhere is one depth
    assert attention56([3, 2, 1, 9]) == cfg and attention56([2, 2, 2, 5]) == attention56(2)
    assert ArchConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["attention"]["mask_depth"] == [3, 2, 1, 1]  # as written
    assert attention56([3, 2, 1, 9]).to_dict()["attention"]["mask_depth"] == [3, 2, 1, 1]
    cbam = {**cfg.to_dict()["attention"], "type": "cbam", "mask_depth": [1, 2]}
    with pytest.raises(ConfigError, match="'cbam' takes no mask_depth"):  # not dropped
        ArchConfig.from_dict({**cfg.to_dict(), "attention": cbam})
    for wrong, said in (([3, 2, 1], "one depth per stage (4)"), ([3, 0, 1, 1], "at least 1"),
                        (["3", 2, 1, 1], "must be a list of integers (or one integer)"),
                        (2.5, "must be an integer (or a list, one per stage)")):  # fmt: skip
        with pytest.raises(ConfigError, match=re.escape(said)):
            attention56(wrong)
