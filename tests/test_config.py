from __future__ import annotations

import json
import re

import pytest

from nas.config import ArchConfig, AttentionConfig, StageConfig
from nas.errors import ConfigError
from nas.presets import PRESETS, preset
from tests.conftest import small_config


@pytest.mark.parametrize("name", PRESETS.names())
def test_json_round_trip_gives_an_equal_config(name: str) -> None:
    cfg = preset(name)
    again = ArchConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(again.to_json()) == cfg.to_dict()


def test_from_dict_accepts_an_export_file_dict() -> None:
    cfg = preset("resnet20-cbam")
    assert ArchConfig.from_dict({"format": "nas-arch/1", "arch": cfg.to_dict()}) == cfg


def test_missing_keys_take_defaults() -> None:
    cfg = ArchConfig.from_dict({"stages": [{"width": 16, "blocks": 1}]})
    assert cfg.stages == (StageConfig(16, 1, 1),)
    assert cfg.num_classes == 10 and cfg.input_size == 32 and cfg.in_channels == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stages": [{"width": 16, "blocks": 1}], "depth": 3}, "unknown key 'depth'"),
        ({"stages": [{"width": 16, "blocks": 1, "heads": 2}]}, "unknown key 'heads' in stage 1"),
        (
            {"stages": [{"width": 16, "blocks": 1}], "attention": {"type": "cbma"}},
            "unknown attention type 'cbma'; did you mean cbam? valid: none, ",
        ),
        (
            {"stages": [{"width": 16, "blocks": 1}], "attention": {"type": "se", "join": "add"}},
            "unknown join 'add'; valid: multiply, residual, weighted",
        ),
        (
            {
                "stages": [{"width": 16, "blocks": 1}],
                "attention": {"type": "se", "placement": "everywhere"},
            },
            "unknown placement 'everywhere'",
        ),
        ({"stages": [{"width": 16.5, "blocks": 1}]}, "width must be an integer"),
        ({"stages": [{"width": 16, "blocks": 0}]}, "stage 1 needs at least one block"),
        (
            {"stages": [{"width": 16, "blocks": 5000}]},
            "stage 1 may have at most 1,024 blocks, got 5,000",
        ),
        (  # a width no tensor could hold: refused, not an overflow deep in torch
            {"stages": [{"width": 10**11, "blocks": 1}]},
            "stage 1 width must be at most 65,536 channels, got 100,000,000,000",
        ),
        (
            {"stages": [{"width": 16, "blocks": 1}], "stem_width": 10**11},
            "stem_width must be at most 65,536 channels",
        ),
        (
            {"stages": [{"width": 16, "blocks": 1}], "input_size": 100_000},
            "input_size must be at most 4,096 pixels, got 100,000",
        ),
        ({"stages": [{"width": 16, "blocks": 1, "stride": 3}]}, "stride must be 1 or 2"),
        (
            {"stages": [{"width": 2, "blocks": 1}], "block": "bottleneck"},
            "stage 1 width 2 cannot be built",
        ),
        (
            {"stages": [{"width": 4, "blocks": 1}], "attention": {"type": "mhsa", "heads": 8}},
            "cannot hold 8 attention heads",
        ),
        (
            {"stages": [{"width": 16, "blocks": 1}], "stem_width": 32, "shortcut": "pad"},
            "narrows 32 -> 16",
        ),
        ({"stages": [{"width": 16, "blocks": 1}], "dropout": 1.5}, "dropout must be in [0, 1)"),
        ({"stages": [{"width": 16, "blocks": 1}], "extra_conv": 2}, "odd kernel size"),
        ({"stages": []}, "non-empty list"),
        ([1, 2], "must be a JSON object"),
        ("best.json", "not a str: read a file with ArchConfig.from_file(path)"),
        # JSON's NaN and 1e400 (inf): refused, not a ValueError or OverflowError
        ({"stages": [{"width": 16, "blocks": 1}], "stem_width": float("nan")}, "got nan"),
        ({"stages": [{"width": 16, "blocks": 1}], "input_size": float("inf")}, "got inf"),
        ({"stages": [{"blocks": 1}]}, "stage 1 has no width (each stage needs width and blocks"),
        ({"stages": [{"width": 16}]}, "stage 1 has no blocks"),
        (
            {"stages": [{"width": 16, "blocks": 1}], "attentoin": {}},
            "unknown key 'attentoin' in architecture; did you mean attention?",
        ),
        (  # knobs no memory holds: refused, not a 25 GB allocation or an endless build
            {
                "stages": [{"width": 16, "blocks": 1}],
                "attention": {"type": "se", "min_hidden": 10**8},
            },
            "attention min_hidden must be at most 65,536, got 100,000,000",
        ),
        (
            {
                "stages": [{"width": 16, "blocks": 1}],
                "attention": {"type": "se", "reduction": 10**24},
            },
            "attention reduction must be at most 65,536",
        ),
        (
            {
                "stages": [{"width": 16, "blocks": 1}],
                "attention": {"type": "se", "placement": "after_stage", "repeats": [100_000]},
            },
            "attention repeats may be at most 1,024 modules per stage, got 100,000",
        ),
        (
            {
                "stages": [{"width": 16, "blocks": 1}],
                "attention": {"type": "residual_attn", "mask_depth": 6},
            },
            "mask_depth 6 pools past 1x1: the 32x32 input images reach 1x1 after 5 max-pools",
        ),
    ],
)
def test_bad_configs_get_one_clear_error(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ArchConfig.from_dict(data)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_canonical_attention_makes_equal_networks_equal_configs() -> None:
    a = small_config(AttentionConfig(type="cbam", placement="after_stage", heads=2, scale=False))
    b = small_config(AttentionConfig(type="cbam", placement="after_stage", repeats=(1, 1, 1)))
    assert a == b  # heads and scale do not apply to cbam; one module per stage is the default
    none = small_config(AttentionConfig(type="none", placement="after_block", join="weighted"))
    assert none == small_config()
    empty = AttentionConfig(type="hierarchical", placement="after_stage", repeats=(0, 0, 0))
    assert small_config(empty) == small_config()  # no module anywhere: the plain network
    assert small_config(empty).summary().endswith("| no attention")


def test_repeats_must_match_the_stages() -> None:
    with pytest.raises(ConfigError, match="one count >= 0 per stage"):
        small_config(AttentionConfig(type="se", placement="after_stage", repeats=(1, 2)))
    with pytest.raises(ConfigError, match="only apply to placement 'after_stage'"):
        small_config(AttentionConfig(type="se", placement="in_block", repeats=(1, 2, 0)))


def test_config_is_frozen() -> None:
    cfg = small_config()
    with pytest.raises(AttributeError):
        cfg.dropout = 0.5  # type: ignore[misc]


def test_from_file_reads_yaml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    cfg = preset("resnet20-mhsa")
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump({"arch": cfg.to_dict()}))
    assert ArchConfig.from_file(path) == cfg
    with pytest.raises(ConfigError, match="cannot read architecture file"):
        ArchConfig.from_file(tmp_path / "missing.json")
    newer = {"format": "nas-arch/2", "arch": cfg.to_dict()}
    with pytest.raises(ConfigError, match="has format 'nas-arch/2', which this version of nas"):
        ArchConfig.from_dict(newer)
    assert ArchConfig.from_dict({"format": "nas-arch/1", "arch": cfg.to_dict()}) == cfg
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    with pytest.raises(ConfigError, match=r"newer\.json: this architecture file has format 'nas-"):
        ArchConfig.from_file(tmp_path / "newer.json")  # which file, when a file was read
    (tmp_path / "empty.json").write_text("\n")
    with pytest.raises(ConfigError, match=r"empty.json is empty \(nas export writes one\)"):
        ArchConfig.from_file(tmp_path / "empty.json")


def test_yaml_under_a_json_name_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import yaml

    cfg = preset("resnet20-cbam")
    path = tmp_path / "arch.json"
    path.write_text(yaml.safe_dump({"arch": cfg.to_dict()}))
    assert ArchConfig.from_file(path) == cfg
    path.write_text("{ not: [json")  # meant as JSON: the JSON error, in one line
    with pytest.raises(ConfigError) as info:
        ArchConfig.from_file(path)
    assert str(info.value) == (
        f"{path} is not valid JSON: Expecting property name enclosed in double quotes "
        "(line 1, column 3)"
    )
    path.write_text("arch:\n  stem_width: 8\n    block: x\n")
    with pytest.raises(ConfigError) as info:
        ArchConfig.from_file(path)
    assert str(info.value) == (
        f"{path} is not valid YAML: mapping values are not allowed here (line 3, column 10)"
    )


def test_the_summary_tells_apart_configs_that_differ_in_attention_repeats() -> None:
    """attention56 and attention92 differ only in residual-attention modules per stage;
    their one-line summaries (nas presets, tables, hover text) once read the same."""
    from nas.presets import preset

    a56, a92 = preset("attention56").summary(), preset("attention92").summary()
    assert a56 != a92 and a92.endswith("residual_attn after_stage multiply x1/2/3/0")
    assert preset("resnet20-cbam").summary() == "basic 16/32/64 x3/3/3 | cbam after_stage weighted"


def test_a_file_may_not_give_a_knob_its_module_does_not_take() -> None:
    """``heads`` written for ``se`` would be dropped without a word; a file is refused, while
    Python's one set of knobs for every type (and a file turned to ``none``) is reset."""
    cfg = small_config(AttentionConfig(type="se", placement="after_stage", reduction=4))
    data = cfg.to_dict()
    assert ArchConfig.from_dict(data) == cfg  # an export's defaults for the other knobs
    for knobs, said in (
        ({"heads": 4}, "'se' takes no heads (it takes reduction, min_hidden); remove it"),
        ({"kernel_size": 3, "scale": False}, "takes no kernel_size or scale"),
    ):
        wrong = {**data, "attention": {**data["attention"], **knobs}}
        with pytest.raises(ConfigError, match=re.escape(said)):
            ArchConfig.from_dict(wrong)
    off = {**data, "attention": {**data["attention"], "type": "none"}}
    assert ArchConfig.from_dict(off) == small_config()
    assert small_config(AttentionConfig(type="se", heads=4)).attention.heads == 8


@pytest.mark.parametrize("input_size", [32, 5])
def test_a_kernel_that_reaches_past_the_input_from_every_pixel_is_refused(input_size: int) -> None:
    """A 65x65 kernel on 32x32 images has weights that never meet a pixel; a 7x7 one on 5x5
    images (CBAM's default on tiny images, which earlier versions searched) still does."""
    widest = 2 * input_size - 1
    spatial = AttentionConfig(type="spatial", placement="after_stage", kernel_size=widest)
    sized = small_config(input_size=input_size)
    assert sized.replace(attention=spatial).attention.kernel_size == widest
    assert sized.replace(extra_conv=widest).extra_conv == widest
    assert sized.replace(attention=AttentionConfig(type="cbam")).attention.kernel_size == 7
    said = f"reaches past the {input_size}x{input_size} input images from every pixel"
    with pytest.raises(ConfigError, match=f"attention kernel_size {widest + 2} {said}"):
        sized.replace(attention=AttentionConfig(type="cbam", kernel_size=widest + 2))
    with pytest.raises(ConfigError, match=rf"extra_conv {widest + 2} {said} \(at most {widest}\)"):
        sized.replace(extra_conv=widest + 2)


def test_a_config_built_in_python_has_its_types_checked_as_a_file_has() -> None:
    """``stem_width="16"`` is one sentence, not a ``TypeError`` from a comparison; lists are
    tuples, so that equal configs hash equal; a float that is an integer is one."""
    stages = (StageConfig(16, 1),)
    for build, said in (
        (lambda: ArchConfig(stages, stem_width="16"), "stem_width must be an integer, got '16'"),
        (lambda: ArchConfig(stages, stem_width=16.5), "stem_width must be an integer, got 16.5"),
        (lambda: ArchConfig(stages, extra_conv=True), "extra_conv must be an integer, got True"),
        (lambda: ArchConfig((StageConfig(16, True),)), "blocks must be an integer, got True"),
        (lambda: ArchConfig(stages, block=None), "block must be a string, got None"),
        (
            lambda: ArchConfig(stages, attention=AttentionConfig(type="self_attn", scale="no")),
            "scale must be true or false, got 'no'",
        ),
        (
            lambda: ArchConfig([{"width": 16, "blocks": 1}]),
            "stage 1 must be StageConfig(...), not a dict (ArchConfig.from_dict reads",
        ),
        (
            lambda: ArchConfig(stages, attention={"type": "se"}),
            "attention must be AttentionConfig(...), not a dict",
        ),
    ):
        with pytest.raises(ConfigError, match=re.escape(said)):
            build()  # type: ignore[no-untyped-call]
    listed = ArchConfig(
        [StageConfig(16, 1)],  # type: ignore[arg-type]
        attention=AttentionConfig(type="se", placement="after_stage", repeats=[2]),  # type: ignore[arg-type]
    )
    assert listed == ArchConfig(
        stages, attention=AttentionConfig("se", "after_stage", repeats=(2,))
    )
    assert hash(listed) == hash(ArchConfig.from_dict(listed.to_dict()))
    spatial = ArchConfig(stages, attention=AttentionConfig(type="spatial", kernel_size=3.0))  # type: ignore[arg-type]
    assert type(spatial.attention.kernel_size) is int
    import numpy as np  # a value from np.arange is an integer too, taken as Python's

    counted = ArchConfig((StageConfig(np.int64(16), 1),), stem_width=np.int64(8))  # type: ignore[arg-type]
    assert counted == ArchConfig((StageConfig(16, 1),), stem_width=8)
    assert type(counted.stem_width) is int and type(counted.stages[0].width) is int


def test_mask_depth_is_bounded_by_the_input_and_only_where_modules_go() -> None:
    stages = tuple(StageConfig(16, 1, 2) for _ in range(3))

    def residual(depth: object, input_size: int = 32) -> ArchConfig:
        attention = AttentionConfig(
            type="residual_attn",
            placement="after_stage",
            repeats=(1, 1, 0),
            mask_depth=depth,  # type: ignore[arg-type]
        )
        return ArchConfig(stages, attention=attention, input_size=input_size)

    assert residual(5).attention.mask_depth == 5  # 32 -> 16 -> 8 -> 4 -> 2 -> 1
    assert residual(6, input_size=33).attention.mask_depth == 6  # 33 -> 17 -> 9 -> 5 -> 3 -> 2 -> 1
    assert residual((2, 3, 40)).attention.mask_depth == (2, 3, 3)  # no module there: its 40 unused
    with pytest.raises(ConfigError, match=r"mask_depth 6 pools past 1x1.*after 5 max-pools"):
        residual((1, 6, 1))


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_key_given_twice_in_a_file_is_refused(tmp_path, suffix: str) -> None:  # type: ignore[no-untyped-def]
    """JSON and YAML parsers keep the last of two equal keys without a word: 16 was written
    and 32 built. The export's own files still read back."""
    text = (
        '{"stem_width": 16, "stages": [{"width": 16, "blocks": 1}], "stem_width": 32}'
        if suffix == ".json"
        else "stem_width: 16\nstages:\n  - {width: 16, blocks: 1}\nstem_width: 32\n"
    )
    path = tmp_path / f"dup{suffix}"
    path.write_text(text)
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(str(path))}: key 'stem_width' is given twice"
    ):
        ArchConfig.from_file(path)
    with pytest.raises(ConfigError, match="key 'blocks' is given twice"):
        ArchConfig.from_json('{"stages": [{"width": 16, "blocks": 1, "blocks": 2}]}')
    cfg = preset("resnet20-cbam")
    path.write_text(
        cfg.to_json() if suffix == ".json" else __import__("yaml").safe_dump(cfg.to_dict())
    )
    assert ArchConfig.from_file(path) == cfg
