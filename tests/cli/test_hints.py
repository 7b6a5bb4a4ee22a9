"""Every command the tool prints for the user to run runs as printed: the ``next:`` hints
of ``nas search`` and ``nas train-winners``, and the Python lines ``nas export`` says to
load the export with, each taken from the output and run as it stands (through a shell, in
a folder whose name needs quoting)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas.fidelity.ladder import Rung
from nas.fidelity.settings import FidelitySettings
from nas.fidelity.summary import _study_lines
from nas.search.settings import SearchSettings
from nas.settings import read_table
from tests.conftest import ROOT


def shell(line: str, cwd: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run ``line`` as a user would paste it into bash, with ``nas`` on the PATH."""
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "PYTHONWARNINGS": "ignore",
    }
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def nas_bin(tmp_path: Path) -> Path:
    """A folder holding a ``nas`` that runs this checkout's, to put on the PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nas").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m nas "$@"\n')
    (bin_dir / "nas").chmod(0o755)
    return bin_dir


def search_line(space: Path, data: Path, storage: str, study: str, trials: int) -> str:
    """A tiny search on the image folder ``data``, as a user would type it (``storage``
    quoted for the shell by the caller when it needs it)."""
    return (
        f"nas search --space '{space}' --dataset imagefolder --data-dir '{data}' "
        f"--proxy-epochs 1 --proxy-subset 32 --proxy-val 8 --proxy-batch-size 16 "
        f"--trials {trials} --storage {storage} --study {study} --device cpu --quiet"
    )


def hint(stdout: str, label: str = "next") -> str:
    """The one ``LABEL: COMMAND`` line of ``stdout``, without its label."""
    lines = [line for line in stdout.splitlines() if line.startswith(f"{label}: ")]
    assert len(lines) == 1, stdout
    return lines[0].removeprefix(f"{label}: ")


@pytest.mark.slow
def test_every_printed_command_runs_as_printed(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    bin_dir = nas_bin(tmp_path)
    work = tmp_path / "first hour"
    work.mkdir()
    out = shell(
        search_line(tiny_space, image_folder, "'sqlite:///my studies/h.db'", "h", 2), work, bin_dir
    )
    assert out.returncode == 0, out.stderr

    train = hint(out.stdout)
    assert train.startswith("nas train-winners --storage 'sqlite:///my studies/h.db' --study h")
    assert "--epochs 1 " in train and "# a first look" in train
    out = shell(train, work, bin_dir)
    assert out.returncode == 0, out.stderr
    assert "training 2 winners of study 'h' for 1 epoch on " in out.stdout

    export = hint(out.stdout)
    assert export.startswith("nas export --storage 'sqlite:///my studies/h.db' --study h --best")
    out = shell(export, work, bin_dir)
    assert out.returncode == 0, out.stderr
    assert (work / "studies" / "h-winners" / "best.pt").is_file()

    load = out.stdout.split("load it with:\n", 1)[1]
    assert 'from_file("studies/h-winners/best.json")' in load  # the path written, not a name
    out = shell(f"{sys.executable} -c '{load}print(type(model).__name__)'", work, bin_dir)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Network"


@pytest.mark.parametrize("rung", [Rung(3, 5000), Rung(2, None, "fast")], ids=lambda r: r.label)
def test_the_study_file_lines_nas_fidelity_recommends_read_back(rung: Rung, tmp_path: Path) -> None:
    """``nas fidelity`` prints no command, but study-file lines to paste: they must read."""
    lines = _study_lines(
        {"epochs": rung.epochs, "subset": rung.subset, "recipe": rung.recipe},
        FidelitySettings(),
    )
    path = tmp_path / "study.toml"
    path.write_text(lines)
    s = SearchSettings.of(**read_table(path, "search", SearchSettings))
    assert (s.proxy_epochs, s.proxy_subset, s.proxy_recipe) == (
        rung.epochs,
        rung.subset,
        rung.recipe,
    )


@pytest.mark.slow
def test_without_a_test_split_the_hint_is_the_export(tiny_space: Path, tmp_path: Path) -> None:
    """nas train-winners refuses data without a test split, so the search does not suggest
    it: it suggests the export, which runs as printed."""
    from tests.conftest import make_image_folder

    bin_dir = nas_bin(tmp_path)
    data = make_image_folder(tmp_path / "no test", test_per_class=0)
    out = shell(search_line(tiny_space, data, "sqlite:///n.db", "n", 1), tmp_path, bin_dir)
    assert out.returncode == 0, out.stderr
    export = hint(out.stdout)
    assert export.startswith("nas export --storage sqlite:///n.db --study n --best")
    assert "train-winners needs a test split" in export
    out = shell(export, tmp_path, bin_dir)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "best.json").is_file()


def test_flags_in_deep_messages_are_renamed_for_python_users() -> None:
    """Only the settings' own flags change, each the way a keyword is given; words that
    are no flag of a setting stay as they are."""
    from nas.search.settings import SearchSettings
    from nas.settings import named_in_python

    said = (
        "use --dataset imagefolder --data-dir DIR, pass --remeasure, raise --param-limit or "
        "see nas --help and --no-such-flag"
    )
    assert named_in_python(said, SearchSettings) == (
        "use dataset='imagefolder' data_dir=DIR, pass remeasure=True, raise param_limit or "
        "see nas --help and --no-such-flag"
    )
    said = "--device cuda was asked for, but no CUDA GPU is available; use --device cpu"
    assert named_in_python(said, SearchSettings) == (
        "device='cuda' was asked for, but no CUDA GPU is available; use device='cpu'"
    )
    said = "--device cuda:1 was asked for: --trials 3: more"
    assert named_in_python(said, SearchSettings) == "device='cuda:1' was asked for: trials 3: more"


def test_a_hint_never_prints_the_database_password(capsys: pytest.CaptureFixture[str]) -> None:
    """A search's summary ends with commands naming --storage; job logs keep them, so a
    PostgreSQL password is shown as *** (and the comment says so), as errors show it."""
    from nas.cli.output import print_hint

    url = "postgresql+psycopg://nas:S3cret@127.0.0.1:5432/nas"
    print_hint(["nas", "search", "--storage", url, "--study", "x"], "continues the study")
    printed = capsys.readouterr().out
    assert "S3cret" not in printed
    assert "--storage 'postgresql+psycopg://nas:***@127.0.0.1:5432/nas'" in printed
    assert printed.rstrip().endswith("continues the study; type the password where *** stands")
    print_hint(["nas", "search", "--storage", "sqlite:///a.db"], "continues")
    assert capsys.readouterr().out == "next: nas search --storage sqlite:///a.db  # continues\n"
