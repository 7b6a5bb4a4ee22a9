from __future__ import annotations

import pytest
import torch

from nas.config import PLACEMENTS, AttentionConfig, StageConfig
from nas.errors import ConfigError
from nas.models import PLACEMENT_RULES, build_model, plan
from nas.presets import PRESETS, preset
from tests.conftest import small_config


def test_placement_rules_cover_the_config_placements() -> None:
    assert set(PLACEMENT_RULES.names()) == set(PLACEMENTS)


@pytest.mark.parametrize(
    ("placement", "expected"),
    [("in_block", 3), ("after_block", 3), ("after_stage", 3), ("after_last_stage", 1)],
)
def test_placements_put_the_right_number_of_modules(placement: str, expected: int) -> None:
    cfg = small_config(AttentionConfig(type="se", placement=placement))
    model = build_model(cfg)
    assert sum(type(m).__name__ == "SqueezeExcite" for m in model.modules()) == expected


def test_in_block_attention_sits_inside_the_block() -> None:
    model = build_model(small_config(AttentionConfig(type="se", placement="in_block")))
    assert model.stages[0][0].attn is not None
    model = build_model(small_config(AttentionConfig(type="se", placement="after_block")))
    assert model.stages[0][0].attn is None and len(model.stages[0]) == 2


def test_repeats_after_stage() -> None:
    cfg = small_config(AttentionConfig(type="se", placement="after_stage", repeats=(0, 2, 1)))
    model = build_model(cfg)
    assert [len(s) for s in model.stages] == [1, 3, 2]


def test_plan_shapes_match_the_forward_pass() -> None:
    for name in PRESETS:
        cfg = preset(name)
        model = build_model(cfg, device="meta")
        x = torch.empty(1, 3, 32, 32, device="meta")
        for unit, (path, module) in zip(plan(cfg), model.units(), strict=True):
            assert unit.name == path
            assert tuple(x.shape[1:]) == unit.in_shape
            x = module(x)


def test_input_channels_size_and_classes_come_from_the_config() -> None:
    cfg = small_config(in_channels=1, input_size=28, num_classes=7)
    assert build_model(cfg)(torch.randn(2, 1, 28, 28)).shape == (2, 7)


def test_build_model_takes_the_json_dict() -> None:
    cfg = preset("resnet20-selfattn")
    a, b = build_model(cfg), build_model(cfg.to_dict())
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]


def test_pad_shortcut_has_no_parameters() -> None:
    conv = small_config(shortcut="conv", stages=(StageConfig(8, 1, 1), StageConfig(16, 1, 2)))
    pad = conv.replace(shortcut="pad")
    n = lambda c: sum(p.numel() for p in build_model(c).parameters())  # noqa: E731
    assert n(conv) - n(pad) == 8 * 16 + 2 * 16  # the 1x1 projection and its BN


def test_weights_round_trip_and_mismatch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = preset("resnet20")
    model = build_model(cfg)
    path = tmp_path / "w.pt"
    torch.save({"model": model.state_dict()}, path)
    again = build_model(cfg, weights=path)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    )
    with pytest.raises(ConfigError) as refused:  # one sentence, not every key torch lists
        build_model(preset("resnet20-cbam"), weights=path)
    said = str(refused.value)
    assert "do not fit this architecture (" in said and "tensors missing, e.g. " in said
    assert len(said) < 400 and "\n" not in said


def test_shortcut_registry_covers_the_config_shortcuts() -> None:
    from nas.config import SHORTCUTS as CONFIG_SHORTCUTS
    from nas.models.blocks import SHORTCUTS

    assert set(SHORTCUTS.names()) == set(CONFIG_SHORTCUTS)


def test_weights_that_are_not_a_state_dict(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    with pytest.raises(ConfigError, match="cannot load weights from"):
        build_model(preset("resnet20"), weights=text)
    listing = tmp_path / "list.pt"
    torch.save([1, 2, 3], listing)
    with pytest.raises(ConfigError, match="holds a list, not a state dict"):
        build_model(preset("resnet20"), weights=listing)


def test_torchvision_resnet_weights_load_where_they_fit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Seed 004 starts from ImageNet ResNet-18: a torchvision state dict loads into the
    resnet18-hierarchical preset block by block; the 7x7 stem, the 1,000-class head and the
    attention module keep their initial values, and a warning names each."""
    import torchvision

    from nas.presets import preset

    torch.manual_seed(0)
    source = torchvision.models.resnet18().state_dict()
    torch.save(source, tmp_path / "resnet18.pt")
    torch.manual_seed(1)
    fresh = build_model(preset("resnet18-hierarchical")).state_dict()
    torch.manual_seed(1)
    with pytest.warns(UserWarning) as said:
        model = build_model(preset("resnet18-hierarchical"), weights=tmp_path / "resnet18.pt")
    got = model.state_dict()
    assert str(said[0].message) == (
        f"{tmp_path / 'resnet18.pt'}: loaded 114 of this network's 132 tensors from a "
        "torchvision ResNet; initial values kept in the stem (conv1.weight: 64x3x7x7 in the "
        "file, 64x3x3x3 here); head (fc.weight: 1000x512 in the file, 10x512 here); 1 "
        "attention module(s) (a torchvision ResNet has none)"
    )
    pairs = {  # nas name: torchvision name
        "stages.0.1.body.2.0.weight": "layer1.1.conv2.weight",
        "stages.1.0.body.0.1.running_var": "layer2.0.bn1.running_var",
        "stages.3.0.shortcut.0.weight": "layer4.0.downsample.0.weight",
        "stages.3.1.body.2.1.bias": "layer4.1.bn2.bias",
    }
    for nas_name, tv_name in pairs.items():
        assert torch.equal(got[nas_name], source[tv_name])
    for kept in ("stem.0.1.weight", "head.fc.weight", "stages.3.2.attn.fuse.weight"):
        assert torch.equal(got[kept], fresh[kept])  # the whole stem, not half of it
    import dataclasses

    with pytest.warns(UserWarning, match=r"; extra conv \(a torchvision ResNet has none\)$"):
        extra = dataclasses.replace(preset("resnet18-hierarchical"), extra_conv=3)
        build_model(extra, weights=tmp_path / "resnet18.pt")
    with pytest.raises(ConfigError, match=r"no layer of the torchvision ResNet .* fits"):
        build_model(preset("resnet20"), weights=tmp_path / "resnet18.pt")


def test_an_unknown_device_is_one_sentence() -> None:
    """torch's own message for ``device="gpu"`` lists twenty device types."""
    from nas.errors import ConfigError
    from nas.presets import preset

    with pytest.raises(ConfigError, match=r"^unknown device 'gpu'; use cpu, cuda, cuda:N or meta"):
        build_model(preset("resnet20"), device="gpu")
    assert build_model(preset("resnet20"), device=torch.device("cpu")).stem is not None
