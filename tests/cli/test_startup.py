"""The command line starts without torch: --help, --version and argument errors are instant.

Each case runs in a fresh interpreter and lists the heavy packages it imported; any one of
them means a command module imports its implementation at the top again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "torchvision", "optuna", "fvcore", "sqlalchemy", "plotly", "numpy", "scipy")

PROBE = """
import json, sys
from nas.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.__stderr__)
"""


def probe(*argv: str) -> dict[str, object]:
    """Run ``nas ARGV`` in a fresh interpreter: its exit code and the heavy packages loaded."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *argv], capture_output=True, text=True
    )
    result: dict[str, object] = json.loads(proc.stderr.strip().splitlines()[-1])
    result["output"] = proc.stdout + proc.stderr
    return result


COMMANDS = [
    "search",
    "fidelity",
    "presets",
    "count",
    "sample",
    "train-winners",
    "export",
    "report",
    "dashboard",
]


@pytest.mark.parametrize("argv", [["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)])
def test_help_and_version_import_nothing_heavy(argv: list[str]) -> None:
    result = probe(*argv)
    assert result["code"] == 0
    assert result["heavy"] == [], f"nas {' '.join(argv)} imported {result['heavy']}"


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "--no-such-flag"],
        ["search", "--param-limit", "5X"],
        ["search", "--dataset", "imagenet"],
        ["search", "--sampler", "cmaes"],
        ["sample", "--param-limit", "-3M"],
        ["fidelity", "--ladder", "3y5000"],
        ["fidelity", "--reference", "0x100"],
        ["dashboard", "--port", "99999"],
        # settings errors, found by a command's light check after parsing
        ["search", "--trials", "0"],
        ["search", "--eta", "1"],
        ["search", "--param-limt", "5M"],
        ["search", "--objectives", "accuracy,latncy"],
    ],
)
def test_argument_errors_come_back_before_torch(argv: list[str]) -> None:
    result = probe(*argv)
    assert result["code"] == 2
    assert result["heavy"] == [], f"nas {' '.join(argv)} imported {result['heavy']}"
    assert "nas: error:" in str(result["output"])


def test_a_real_command_still_loads_its_implementation() -> None:
    """The lazy layout defers imports; it must not lose them (count needs fvcore)."""
    result = probe("count", "--preset", "resnet20", "--json")
    assert result["code"] == 0
    assert "fvcore" in result["heavy"] and "torch" in result["heavy"]


def test_a_bad_study_file_is_refused_before_torch(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[search]\nsampler = "tpee"\n')
    result = probe("search", str(bad))
    assert result["code"] == 2 and result["heavy"] == [], result["heavy"]
    assert "did you mean tpe?" in str(result["output"])


def test_a_fresh_import_of_nas_reaches_its_subpackages_by_name() -> None:
    """``import nas`` then ``nas.search.events.LogMonitor`` (as the how-to writes it) works in
    a fresh interpreter, where nothing imported ``nas.search`` first; a name that is neither
    an export nor a module is still an AttributeError."""
    code = (
        "import sys, nas; print(nas.search.events.LogMonitor.__name__); "
        "print(hasattr(nas, 'no_such_name'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["LogMonitor", "False"]
