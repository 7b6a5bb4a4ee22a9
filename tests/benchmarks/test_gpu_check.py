"""``benchmarks/gpu_check.sh``: what it would run, and its refusal without a GPU."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_dry_run_lists_every_check_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "figures"
    run = _run("--dry-run", "--out", str(out), "--data", str(tmp_path / "cifar"))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    steps = [line.split("(")[1].split(",")[0] for line in lines if line.startswith("would run")]
    assert steps == ["cuda-tests", "proxy-throughput", "latency", "search-latency", "export"]
    assert "pytest tests/cuda" in run.stdout and "--objectives accuracy,latency" in run.stdout
    assert "benchmarks/latency.py --device cuda" in run.stdout
    # every limit together stays under the 10 minutes a lent GPU machine gives a command
    limits = [int(line.split("at most ")[1].split("s)")[0]) for line in lines if "at most" in line]
    assert sum(limits) <= 580  # and the data extraction
    assert not out.exists()


def test_unknown_argument_is_one_line() -> None:
    run = _run("--fast")
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_without_a_gpu_it_refuses_in_one_line(tmp_path: Path) -> None:
    run = _run("--out", str(tmp_path / "g"))
    assert run.returncode == 2 and "no CUDA GPU" in run.stderr
    assert run.stderr.strip().count("\n") == 0
