"""The failure matrix: every user mistake gets one clear line and a non-zero exit, and every
trial-level failure fails that trial with its reason while the study goes on.

Rows answered elsewhere (each a real test):

* a worker killed mid-trial: tests/search/test_workers.py::test_three_workers_one_killed_mid_trial
* a NaN loss and an out-of-memory trial:
  tests/search/test_search_cli.py::test_nan_loss_and_out_of_memory_fail_one_trial_each
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import make_image_folder, run_nas

Setup = Callable[[Path, Path, Path], list[str]]


def search(space: Path | str, data: Path | str, *extra: str) -> list[str]:
    return [
        "search",
        "--space",
        str(space),
        "--dataset",
        "imagefolder",
        "--data-dir",
        str(data),
        "--trials",
        "1",
        "--proxy-epochs",
        "1",
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def bad_space(text: str) -> Setup:
    def setup(tmp: Path, space: Path, data: Path) -> list[str]:
        path = tmp / "bad.toml"
        path.write_text(text)
        return search(path, data, "--storage", f"sqlite:///{tmp}/s.db")

    return setup


def limit(value: str) -> Setup:
    return lambda tmp, space, data: search(
        space, data, f"--param-limit={value}", "--storage", f"sqlite:///{tmp}/s.db"
    )


def empty_folder(tmp: Path, space: Path, data: Path) -> list[str]:
    (tmp / "empty" / "train").mkdir(parents=True)
    return search(space, tmp / "empty", "--storage", f"sqlite:///{tmp}/s.db")


def one_class(tmp: Path, space: Path, data: Path) -> list[str]:
    folder = make_image_folder(tmp / "one", classes=1, per_class=4, test_per_class=1)
    return search(space, folder, "--storage", f"sqlite:///{tmp}/s.db")


def unreachable(tmp: Path, space: Path, data: Path) -> list[str]:
    return search(space, data, "--storage", "postgresql+psycopg://nas:secret@127.0.0.1:1/nas")


def other_objectives(tmp: Path, space: Path, data: Path) -> list[str]:
    import optuna

    study = optuna.create_study(
        study_name="s", storage=f"sqlite:///{tmp}/s.db", directions=["maximize", "minimize"]
    )
    study.set_metric_names(["val_accuracy", "params"])
    return search(
        space,
        data,
        "--storage",
        f"sqlite:///{tmp}/s.db",
        "--study",
        "s",
        "--objectives",
        "accuracy,flops",
    )


ROWS: dict[str, tuple[Setup, str]] = {
    "malformed space file": (bad_space("[stages\nwidth = 3\n"), "is not valid TOML"),
    "unknown space file key": (
        bad_space("[stages]\ngrowth = [1, 2]\nblocks = 1\ndepth = 3\n"),
        "unknown key in [stages] 'depth'",
    ),
    "unknown attention type": (
        bad_space("[stages]\ngrowth = [1, 2]\nblocks = 1\n[attention]\ntype = ['cbma']\n"),
        "unknown attention type 'cbma'; did you mean cbam? valid: none, se, channel, spatial, cbam",
    ),
    "zero limit": (limit("0"), "parameter limit must be positive"),
    "negative limit": (limit("-2M"), "parameter limit must be positive"),
    "unparsable limit": (limit("lots"), "cannot read parameter limit 'lots'"),
    "limit below the smallest candidate": (limit("500"), "is below the cheapest candidate"),
    "missing data folder": (
        lambda tmp, space, data: search(space, tmp / "nope", "--storage", f"sqlite:///{tmp}/s.db"),
        "data folder",
    ),
    "empty data folder": (empty_folder, "no images found in"),
    "image folder with one class": (one_class, "only one class ('class0')"),
    "unreachable database": (
        unreachable,
        "cannot reach the study database postgresql+psycopg://nas:***@127.0.0.1:1/nas",
    ),
    "study with other objectives": (
        other_objectives,
        "exists with objectives accuracy,params, not accuracy,flops",
    ),
}


@pytest.mark.parametrize("row", list(ROWS))
def test_user_mistake_is_one_line_and_nonzero(
    row: str, tmp_path: Path, tiny_space: Path, image_folder: Path
) -> None:
    setup, message = ROWS[row]
    out = run_nas(*setup(tmp_path, tiny_space, image_folder), cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("nas: error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], out.stderr  # progress lines may precede
    assert message in errors[0]
    assert "Traceback" not in out.stderr and "secret" not in out.stderr


def test_read_only_studies_folder(tmp_path: Path, tiny_space: Path, image_folder: Path) -> None:
    studies = tmp_path / "studies"
    studies.mkdir()
    studies.chmod(0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root ignores mode bits unless it gives up CAP_DAC_OVERRIDE
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot make a folder read-only")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    try:
        out = run_nas(
            *search(tiny_space, image_folder, "--study", "ro"), cwd=tmp_path, prefix=prefix
        )
    finally:
        studies.chmod(0o755)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"nas: error: the study database {studies / 'ro.db'} cannot be written (read-only "
        "folder?); pass --storage sqlite:///PATH somewhere writable"
    ]
    assert not (studies / "ro.db").exists()


def test_a_storage_path_missing_more_than_its_folder_is_refused_not_made(
    tmp_path: Path, tiny_space: Path, image_folder: Path
) -> None:
    """``studies/`` is made where it is missing (the default storage's folder), but a path
    missing more than that is a typo: made, it would start a new study somewhere unexpected."""
    typo = tmp_path / "nonexist" / "dir" / "x.db"
    out = run_nas(
        *search(tiny_space, image_folder, "--storage", f"sqlite:///{typo}", "--study", "t"),
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"nas: error: the folder {tmp_path / 'nonexist'} of the study database {typo} does not "
        "exist; create it, or pass --storage sqlite:///PATH in a folder that does"
    )
    assert not (tmp_path / "nonexist").exists()
    made = tmp_path / "studies" / "x.db"  # one folder missing: made, as for the default
    out = run_nas(*search(tiny_space, image_folder, "--storage", f"sqlite:///{made}",
                          "--study", "t"), cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert made.exists()
