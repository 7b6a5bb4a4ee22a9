"""``nas presets``, ``nas count`` and ``nas sample`` through a real subprocess."""

from __future__ import annotations

import json

import pytest

from nas.models import ATTENTION
from nas.presets import PRESETS
from tests.conftest import DEFAULT_SPACE, run_nas


def test_help_teaches_every_command() -> None:
    import argparse

    from nas.cli.main import COMMANDS, build_parser

    parser = build_parser()
    out = run_nas("--help")  # the real command once; each subcommand's page from its parser
    assert out.returncode == 0
    assert len(COMMANDS) >= 8
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in COMMANDS:
        assert command in out.stdout
        page = subparsers.choices[command].format_help()
        assert "examples:" in page
        assert "  nas " + command in page  # at least one example of the command itself
    sample = run_nas("sample", "--help")
    assert sample.returncode == 0 and sample.stdout.startswith("usage: nas sample")


def test_presets_json_lists_every_preset() -> None:
    out = run_nas("presets", "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert [p["name"] for p in listed] == PRESETS.names()
    helped = run_nas("presets", "--help").stdout
    for key in listed[0]:  # --help names every key the JSON has
        assert f"{key} " in helped or f"{key}," in helped or f"{key}}}" in helped, key


def test_count_json_for_seed_001() -> None:
    out = run_nas("count", "--preset", "enhanced-efficient-resnet", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert isinstance(data["params"], int) and isinstance(data["flops"], int)
    assert abs(data["params"] - 4_913_705) / 4_913_705 < 0.01 < 1 and data["params"] < 5_000_000
    assert [row["name"] for row in data["breakdown"]][:2] == ["stem", "stage1"]
    assert len(data["attention_modules"]) == 8


def test_count_table_and_limit_verdict() -> None:
    out = run_nas("count", "--preset", "resnet20", "--param-limit", "250k")
    assert out.returncode == 0
    assert "269,722" in out.stdout and "exceeds" in out.stdout


def test_count_reads_a_config_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from nas.presets import preset

    path = tmp_path / "arch.json"
    path.write_text(preset("resnet20-mhsa").to_json())
    out = run_nas("count", "--config", str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["params"] == 291_677


def test_sample_300_candidates_under_5m() -> None:
    out = run_nas(
        "sample",
        "--space",
        str(DEFAULT_SPACE),
        "-n",
        "300",
        "--param-limit",
        "5M",
        "--no-flops",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    cands = data["candidates"]
    assert len(cands) == 300
    types = {c["arch"]["attention"]["type"] for c in cands}
    assert types == set(ATTENTION.names())
    assert any(not c["feasible"] for c in cands)
    assert all(c["params"] <= 5_000_000 for c in cands if c["feasible"])
    assert all(c["params"] > 5_000_000 for c in cands if not c["feasible"])
    assert 0 < data["rejection_rate"] < 1


def test_sample_without_a_limit_previews_the_search_s_default_limit() -> None:
    """A dry run of the search: without --param-limit both reject above 5M, so the
    rejection rate it shows is the one the search will meet."""
    args = ("sample", "--space", str(DEFAULT_SPACE), "-n", "60", "--no-flops", "--json")
    data = json.loads(run_nas(*args).stdout)
    limited = json.loads(run_nas(*args, "--param-limit", "5M").stdout)
    assert data["candidates"] == limited["candidates"] and data["param_limit"] == 5_000_000
    assert any(not c["feasible"] for c in data["candidates"])


def test_sample_counts_flops_of_feasible_candidates() -> None:
    out = run_nas(
        "sample",
        "--space",
        "search_spaces/small_cifar.toml",
        "-n",
        "12",
        "--param-limit",
        "60k",
        "--json",
        "--workers",
        "1",
    )
    assert out.returncode == 0, out.stderr
    cands = json.loads(out.stdout)["candidates"]
    assert all(isinstance(c["flops"], int) and c["flops"] > 0 for c in cands if c["feasible"])


def test_sample_takes_any_integer_seed() -> None:
    """A negative seed (valid for Python's random) must not crash Optuna's RandomSampler."""
    out = run_nas(
        "sample",
        "--space",
        "search_spaces/small_cifar.toml",
        "-n",
        "3",
        "--seed",
        "-1",
        "--json",
        "--workers",
        "1",
    )
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["candidates"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("count", "--preset", "resnet21"), "unknown preset 'resnet21'; did you mean resnet20?"),
        (("count", "--preset", "vgg"), "unknown preset 'vgg'; valid: "),
        (("sample", "--param-limit", "five"), "cannot read parameter limit 'five'"),
        (("sample", "--param-limit=-3M"), "parameter limit must be positive"),
        (("sample", "--param-limit", "0"), "parameter limit must be positive"),
        (("count",), "one of the arguments --preset --config is required"),
        (("sample", "--space", "nope.toml"), "space file nope.toml does not exist"),
        (("count", "--config", "missing.json"), "cannot read architecture file missing.json"),
        (("count", "--config", "x.json", "--num-classes", "100"), "apply to --preset"),
        (
            ("count", "--preset", "resnet20", "--in-channels", "0"),
            "argument --in-channels: must be at least 1, got 0",
        ),
        (("sample", "--workers", "0"), "argument --workers: must be at least 1, got 0"),
        (("sample", "--num-classes", "ten"), "expected an integer, got 'ten'"),
        (
            ("sample", "-n", "99999999999999999999"),
            "-n must be between 1 and 100,000, got 99,999,999,999,999,999,999",
        ),
        (
            ("count", "--preset", "resnet20", "--num-classes", "100000000"),
            "num_classes must be at most 1,000,000, got 100,000,000",
        ),
        (  # a self-attention over 4M positions: its score matrix alone is petabytes
            ("count", "--preset", "resnet20-selfattn", "--input-size", "2048"),
            "counting the FLOPs of the self_attn attention on a 16x2048x2048 input needs more "
            "memory than this machine has (",
        ),
        (  # no candidate could fit: refused as nas search refuses it, not 100% rejected
            ("sample", "--space", "search_spaces/small_cifar.toml", "--param-limit", "1k"),
            "the params limit 1.00k is below the cheapest candidate of space 'small_cifar' "
            "(3.87k params: basic 8/8/8 x1/1/1 | no attention); raise --param-limit",
        ),
    ],
)
def test_user_mistakes_are_one_line_and_nonzero(args: tuple[str, ...], message: str) -> None:
    out = run_nas(*args)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
