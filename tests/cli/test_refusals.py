"""A refused run changes nothing: for every refusal below, one line on stderr, exit status 2,
and the folder it ran in holds exactly what it held before (no database, no lock file, no
output folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, make_study, run_nas

SMALL = "search_spaces/small_cifar.toml"

#: name -> arguments of a refused run (run in a folder with copies of the spaces and studies).
REFUSALS: dict[str, list[str]] = {
    "missing data folder": ["search", "--dataset", "imagefolder", "--data-dir", "nope"],
    "trials 0": ["search", "studies/smoke.toml", "--trials", "0"],
    "unknown sampler": ["search", "studies/smoke.toml", "--sampler", "tpee"],
    "mistyped flag": ["search", "studies/smoke.toml", "--trails", "3"],
    "unknown study-file key": ["search", "bad.toml"],
    "limit below the cheapest": ["search", "studies/smoke.toml", "--param-limit", "10"],
    "negative learning rate": ["search", "studies/smoke.toml", "--proxy-lr", "-1"],
    "learning rate nan": ["search", "studies/smoke.toml", "--proxy-lr", "nan"],
    "limit beyond a float": ["search", "studies/smoke.toml", "--param-limit", "1e400"],
    "in-memory database": ["search", "studies/smoke.toml", "--storage", "sqlite:///"],
    "unreachable database": [
        "search", "studies/smoke.toml", "--storage", "postgresql+psycopg://u:p@127.0.0.1:1/n",
    ],
    "export of a missing study": [
        "export", "--storage", "sqlite:///studies/none.db", "--study", "x", "--best",
        "--out", "out/best.json",
    ],
    "report of a missing study": [
        "report", "--storage", "sqlite:///studies/none.db", "--study", "x", "--out", "r.html",
    ],
    "train-winners of a missing study": [
        "train-winners", "--storage", "sqlite:///studies/none.db", "--study", "x", "--top-k",
        "1", "--epochs", "1", "--out-dir", "runs",
    ],
    "dashboard without a database": ["dashboard"],
    "report to a folder": [
        "report", "--storage", "sqlite:///studies/none.db", "--study", "x", "--out", "out/",
    ],
}  # fmt: skip

#: name -> arguments of a refused run that reads study ``w`` in ``w.db`` (a real one).
ON_A_STUDY: dict[str, list[str]] = {
    "export --pareto to a file name": ["export", "--pareto", "--out", "e1.json"],
    "export --pareto into a file": ["export", "--pareto", "--out", "w.db"],
}

REFUSALS["seed beyond 64 bits"] = ["search", "studies/smoke.toml", "--seed", "1" + "0" * 20]
REFUSALS["seed below -9e13"] = ["search", "studies/smoke.toml", "--seed=-100000000000000"]
REFUSALS["workers on no device"] = [
    "search",
    "studies/smoke.toml",
    "--workers",
    "2",
    "--device",
    "gpu",
]
if not torch.cuda.is_available():
    REFUSALS["cuda without a GPU"] = ["search", "studies/smoke.toml", "--device", "cuda"]
    REFUSALS["cuda workers without a GPU"] = [*REFUSALS["cuda without a GPU"], "--workers", "2"]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_a_refused_run_changes_nothing(name: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "search_spaces", tmp_path / "search_spaces")
    shutil.copytree(ROOT / "studies", tmp_path / "studies", ignore=shutil.ignore_patterns("*.db*"))
    (tmp_path / "bad.toml").write_text('[search]\nparam_limt = "5M"\n')
    before = _tree(tmp_path)
    out = run_nas(*REFUSALS[name], cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nas: error: "), out.stderr
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("name", list(ON_A_STUDY))
def test_a_refused_run_on_a_study_writes_nothing(
    name: str, tmp_path: Path, image_folder: Path
) -> None:
    make_study(tmp_path / "w.db", image_folder, {"se": 0.7, "cbam": 0.8})
    before = _tree(tmp_path)
    command, *rest = ON_A_STUDY[name]
    out = run_nas(command, "--storage", "sqlite:///w.db", "--study", "w", *rest, cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nas: error: "), out.stderr
    assert _tree(tmp_path) == before
    said = "is a file name: with" if name.endswith("name") else "w.db is a file: with --pareto"
    assert said in lines[0]
