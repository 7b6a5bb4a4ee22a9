from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import optuna
import pytest

from nas.config import JOINS, PLACEMENTS
from nas.errors import SpaceError
from nas.models import ATTENTION
from nas.presets import PRESETS, preset
from nas.space import load_space, parse_space
from tests.conftest import DEFAULT_SPACE, ROOT


@pytest.fixture(scope="module")
def space():  # type: ignore[no-untyped-def]
    return load_space(DEFAULT_SPACE)


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_is_a_point_of_the_default_space(space, name: str) -> None:  # type: ignore[no-untyped-def]
    cfg = preset(name)
    params = space.params_for(cfg)
    assert space.suggest(optuna.trial.FixedTrial(params)) == cfg


def test_default_space_covers_every_attention_join_and_placement(space) -> None:  # type: ignore[no-untyped-def]
    assert set(space.attention["type"].values()) == set(ATTENTION.names())
    assert set(space.attention["join"].values()) == set(JOINS)
    assert set(space.attention["placement"].values()) == set(PLACEMENTS)


def test_random_sampling_reaches_every_attention_type(space) -> None:  # type: ignore[no-untyped-def]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(300):
        seen[space.suggest(study.ask()).attention.type] += 1
    assert set(seen) == set(ATTENTION.names())


def test_only_the_knobs_of_the_sampled_type_are_parameters(space) -> None:  # type: ignore[no-untyped-def]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(60):
        trial = study.ask()
        cfg = space.suggest(trial)
        if cfg.attention.type == "mhsa":
            assert "heads" in trial.params and "kernel_size" not in trial.params
        if cfg.attention.type == "none":
            assert "placement" not in trial.params
        if cfg.attention.placement != "after_stage":
            assert not any(k.endswith("_repeats") for k in trial.params)


def test_shipped_spaces_all_load() -> None:
    for path in (ROOT / "search_spaces").glob("*.toml"):
        assert load_space(path).name


def test_a_space_can_be_named_without_its_folder() -> None:
    assert load_space("small_cifar").name == "small_cifar"


def _minimal(**sections: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {"stages": {"width": [16, 32], "blocks": 1}}
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            _minimal(backbone={"stem_widht": 16}),
            "unknown key in [backbone] 'stem_widht' (did you mean 'stem_width'?)",
        ),
        (
            _minimal(attention={"type": ["se", "cbma"]}),
            "unknown attention type 'cbma'; did you mean cbam? valid: none, ",
        ),
        (_minimal(attention={"join": []}), "attention.join: the choice list is empty"),
        (_minimal(stages={"blocks": {"low": 4, "high": 2}}), "low 4 is greater than high 2"),
        (  # Optuna would warn and draw from 8..13 only
            _minimal(backbone={"stem_width": {"low": 8, "high": 16, "step": 5}}),
            "backbone.stem_width: step 5 does not divide the range 8..16, so 16 could never be "
            "drawn; give high = 13 or a step that divides 8",
        ),
        (
            _minimal(backbone={"dropout": {"low": 0.0, "high": 0.5, "step": 0.2}}),
            "step 0.2 does not divide the range 0.0..0.5",
        ),
        (_minimal(attention={"placement": ["after_stag"]}), "did you mean after_stage? valid:"),
        (_minimal(stages={"width": {"low": 0, "high": 8}}), "stages.width: must be at least 1"),
        (
            _minimal(backbone={"block": ["basic", "bottleneck"]}, stages={"width": [2, 16]}),
            "stage 1 width can be as low as 2, which bottleneck blocks cannot build",
        ),
        (_minimal(attention={"type": "mhsa", "heads": [2, 32]}), "cannot hold 32 mhsa heads"),
        (_minimal(stages={"stride": [1, 3]}), "stages.stride: must be 1 or 2, got 3"),
        (_minimal(attention={"kernel_size": [4]}), "must be an odd kernel size"),
        ({"stages": {"blocks": 1}}, "needs exactly one of 'width' (channels) or 'growth'"),
        ({**_minimal(), "training": {}}, "unknown top-level table 'training'"),
        (_minimal(stages={"growth": [0.5]}), "must be at least 1 (widths never shrink)"),
        (_minimal(backbone={"stem_width": [10**11]}), "must be at most 65,536, got 100,000,"),
        (_minimal(stages={"blocks": [1, 5000]}), "stages.blocks: must be at most 1,024, got 5,000"),
        (  # widths that grow past what a layer may have, stage by stage
            _minimal(stages={"growth": [1, 1000]}),
            "stage 2 width can reach",
        ),
        (_minimal(backbone={"dropout": {"low": 0.0, "high": 1.0}}), "must be in [0, 1)"),
        (_minimal(stages={"width": {"low": 8, "high": 16, "bad": 1}}), "unknown range key 'bad'"),
        (  # it was taken and never applied: stages are numbered from 1
            _minimal(stages={"0": {"stride": 1}}),
            "[stages.0]: stages are numbered from 1 ([stages.1] is the first)",
        ),
        (  # checked at its ends only, it drew 4 and 6: candidates that cannot be built
            _minimal(attention={"type": "cbam", "kernel_size": {"low": 3, "high": 7}}),
            "attention.kernel_size: the range 3..7 draws 4, which it cannot take (must be an "
            "odd kernel size, got 4); give a step that skips it",
        ),
        (_minimal(backbone={"extra_conv": {"low": 0, "high": 3}}), "the range 0..3 draws 2"),
        (  # drawn twice as often, without a word
            _minimal(attention={"type": ["se", "se", "none"]}),
            "attention.type: 'se' is listed twice; list each choice once",
        ),
        (
            _minimal(attention={"type": ["se", "none"], "heads": [2, 4]}),
            "attention.heads: no attention type of this space takes it (it samples se, none; "
            "mhsa would)",
        ),
    ],
)
def test_each_mistake_gets_one_clear_error(raw: dict[str, Any], message: str) -> None:
    if "growth" in raw["stages"] and "width" in raw["stages"]:
        del raw["stages"]["width"]
    with pytest.raises(SpaceError) as info:
        parse_space(raw)
    assert message in str(info.value)


def test_several_mistakes_are_all_reported() -> None:
    raw = _minimal(backbone={"stem_widht": 16}, attention={"type": ["cbma"], "join": []})
    with pytest.raises(SpaceError) as info:
        parse_space(raw)
    text = str(info.value)
    assert "3 problems" in text and "cbma" in text and "stem_widht" in text


def test_malformed_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[stages\nwidth = 3")
    with pytest.raises(SpaceError, match="is not valid TOML"):
        load_space(bad)
    with pytest.raises(SpaceError, match=r"does not exist$"):
        load_space(tmp_path / "nope.toml")


def test_a_mistyped_space_file_names_the_closest_one(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text("")
    for given, meant in (
        (tmp_path / "mien.toml", tmp_path / "mine.toml"),  # beside it
        ("search_spaces/smal_cifar.toml", "search_spaces/small_cifar.toml"),  # shipped
        ("attention_resnt", "attention_resnet.toml"),  # a shipped one by name
    ):
        with pytest.raises(SpaceError) as refused:
            load_space(given)
        assert str(refused.value) == f"space file {given} does not exist; did you mean {meant}?"
    (tmp_path / "growthneg.toml").write_text("")  # shares only .toml with the name given
    with pytest.raises(SpaceError) as refused:
        load_space(tmp_path / "nothere.toml")
    assert str(refused.value) == f"space file {tmp_path / 'nothere.toml'} does not exist"


def test_a_preset_outside_a_space_is_named(space) -> None:  # type: ignore[no-untyped-def]
    small = load_space("small_cifar")
    with pytest.raises(SpaceError, match="outside space 'small_cifar'"):
        small.params_for(preset("attention56"))


def test_mhsa_heads_are_checked_only_where_a_module_can_go() -> None:
    """After the last stage only, narrow early stages hold no mhsa module: the space is
    valid (the config it samples builds), while a last stage too narrow is still refused."""
    raw = {
        "backbone": {"stem_width": 16},
        "stages": {"count": 3, "growth": [1, 2], "blocks": 1, "3": {"width": 256}},
        "attention": {"type": "mhsa", "placement": "after_last_stage", "heads": 64},
    }
    space = parse_space(raw)
    arch = space.suggest(optuna.create_study().ask())
    assert arch.stages[-1].width == 256 and arch.attention.heads == 64  # and it builds
    raw["stages"]["3"] = {"width": 32}
    with pytest.raises(SpaceError, match="stage 3 width can be as low as 32, which cannot hold"):
        parse_space(raw)


def test_a_stage_gives_its_width_or_its_growth_and_stages_that_all_do_need_no_shared_one() -> None:
    both = {"stages": {"count": 3, "growth": 2, "blocks": 1, "2": {"width": 32, "growth": 2}}}
    with pytest.raises(SpaceError, match=r"\[stages.2\] gives both 'width' and 'growth'"):
        parse_space(both)  # the width was dropped: stage 2 came out 64 wide
    own = {"stages": {"count": 3, "blocks": 1, "1": {"width": 16}, "2": {"width": 32},
                      "3": {"width": 64}}}  # fmt: skip
    arch = parse_space(own).suggest(optuna.create_study().ask())
    assert [s.width for s in arch.stages] == [16, 32, 64]
    del own["stages"]["3"]  # stage 3 has no width of its own now, nor a shared one
    with pytest.raises(SpaceError, match=r"stage 3 has no width or growth of its own: give "):
        parse_space(own)


def test_a_range_of_kernel_sizes_on_odd_steps_and_knobs_of_the_types_sampled_load() -> None:
    space = parse_space(
        _minimal(attention={"type": ["cbam", "none"], "kernel_size": {"low": 3, "high": 7,
                                                                      "step": 2},
                            "reduction": [4, 8]})
    )  # fmt: skip
    assert space.attention["kernel_size"].values() == [3, 7]
