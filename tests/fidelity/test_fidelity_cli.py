"""``nas fidelity`` end to end on made-up images: the table, JSON, and resume after an
interrupt without redoing or losing a job."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from nas.errors import NasError
from nas.fidelity.ladder import Rung, parse_ladder
from tests.conftest import AGREEMENT_KEYS, ROOT, make_image_folder, run_nas
from tests.pgserver import PostgresServer

PANEL = 3
RUNGS = 3  # two ladder rungs and the reference


def _args(data: Path, db: Path | str, *extra: str) -> list[str]:
    """The fidelity command on ``data``; ``db`` is a SQLite file or a storage URL."""
    storage = db if isinstance(db, str) else f"sqlite:///{db}"
    return [
        "fidelity",
        "--space",
        str(ROOT / "search_spaces" / "small_cifar.toml"),
        "--dataset",
        "imagefolder",
        "--data-dir",
        str(data),
        "--param-limit",
        "60k",
        "--panel",
        str(PANEL),
        "--ladder",
        "1x24,2x48",
        "--reference",
        "3x96",
        "--val",
        "12",
        "--device",
        "cpu",
        "--storage",
        storage,
        "--study",
        "fid",
        *extra,
    ]


def _complete(db: Path | str) -> list[optuna.trial.FrozenTrial]:
    storage = db if isinstance(db, str) else f"sqlite:///{db}"
    study = optuna.load_study(study_name="fid", storage=storage)
    return [t for t in study.trials if t.state.name == "COMPLETE"]


def test_rungs_parse_and_refuse_nonsense() -> None:
    assert parse_ladder("1x2000, 3x5000") == (Rung(1, 2000), Rung(3, 5000))
    assert Rung.parse("30xall") == Rung(30, None) and Rung(30, None).label == "30xall"
    for bad in ("3", "0x100", "3x1", "ax5", "3x100:", "3x100:fast:fast"):
        with pytest.raises(NasError, match="bad rung"):
            Rung.parse(bad)
    fast = Rung.parse("3x5000:fast")
    assert fast == Rung(3, 5000, "fast") and fast.label == "3x5000:fast"
    assert Rung.parse("3x5000:standard").label == "3x5000"  # the default is not written
    assert fast != Rung(3, 5000)  # a recipe's jobs are its own
    with pytest.raises(NasError, match="unknown proxy recipe 'slow'; valid: standard, fast"):
        Rung.parse("3x5000:slow")
    with pytest.raises(NasError, match="repeats"):
        parse_ladder("1x100,1x100")
    # what is wrong is named: a well-formed rung that trains too little, an empty rung
    with pytest.raises(NasError, match=r"^bad rung '1x1': a rung trains on at least 2 images$"):
        Rung.parse("1x1")
    with pytest.raises(NasError, match=r"^bad rung '0x100': a rung trains at least 1 epoch$"):
        Rung.parse("0x100")
    for empty in ("1x256,,", ",1x256", "1x256,,3x512"):
        with pytest.raises(NasError, match=r"has an empty rung \(two commas, or one at an end"):
            parse_ladder(empty)
    with pytest.raises(NasError, match="needs at least one rung"):
        parse_ladder(" ")


@pytest.mark.parametrize("tau", [1.5, -2.0])
def test_a_target_tau_no_kendall_tau_can_reach_is_refused(tau: float) -> None:
    from nas.fidelity.settings import FidelitySettings

    # built in Python, it is named as Python names it (the command line's flag: below)
    with pytest.raises(NasError, match=f"^target_tau must be between -1 and 1 .*got {tau:g}$"):
        FidelitySettings(target_tau=tau)
    assert FidelitySettings(target_tau=-1.0).target_tau == -1.0  # the bounds are taken


def test_the_command_line_names_a_wrong_fidelity_setting_by_its_flag(capsys) -> None:  # type: ignore[no-untyped-def]
    from nas.cli.main import main

    assert main(["fidelity", "--dataset", "fake", "--target-tau", "2", "--panel", "2"]) == 2
    said = capsys.readouterr().err
    assert "--panel must be at least 3" in said and "--target-tau must be between" in said


@pytest.mark.slow
def test_fidelity_resumes_after_an_interrupt_and_reports(tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "imgs", classes=3, per_class=50, test_per_class=4)
    db = tmp_path / "fid.db"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NAS_SLOW_EPOCH": "0.5"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas", *_args(data, db)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if db.exists() and len(_safe_complete(db)) >= 2:
            break
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    first = _complete(db)
    assert 2 <= len(first) < PANEL * RUNGS
    # what was done and what is left, not only "interrupted"
    assert (
        f"interrupted: {len(first)} of {PANEL * RUNGS} jobs done; the running job goes back "
        "to the pool, and the same command resumes the rest"
    ) in err
    study = optuna.load_study(study_name="fid", storage=f"sqlite:///{db}")
    assert not [t for t in study.trials if t.state.name == "RUNNING"]

    res = run_nas(*_args(data, db, "--json"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    done = _complete(db)
    jobs = Counter((t.user_attrs["candidate"], t.user_attrs["rung"]) for t in done)
    assert len(jobs) == PANEL * RUNGS and set(jobs.values()) == {1}  # each job exactly once
    assert {t.number for t in first} <= {t.number for t in done}  # nothing redone
    assert [r["rung"] for r in result["rungs"]] == ["1x24", "2x48"]
    for r in result["rungs"]:
        assert AGREEMENT_KEYS | {"epochs", "subset", "seconds", "cost_share"} <= set(r)
        assert r["n"] == PANEL and r["seconds"] > 0
        assert r["trained"] + r["failed"] == PANEL and r["complete"] is True
        assert r["same_size_pairs"] is not None  # sizes come from the panel's params
    # work, not seconds: 1 x 24 and 2 x 48 images against 3 x 96
    assert [r["cost_share"] for r in result["rungs"]] == pytest.approx([24 / 288, 96 / 288])
    assert result["rungs"][0]["partial"] == []
    assert [p["at_epoch"] for p in result["rungs"][1]["partial"]] == [1]
    assert set(result["rungs"][1]["partial"][0]) >= AGREEMENT_KEYS
    assert result["reference"]["rung"] == "3x96" and result["reference"]["trained"] == PANEL
    assert {"params", "flops", "synflow", "naswot", "grad_norm"} <= set(result["zero_cost"])
    for a in result["zero_cost"].values():
        assert set(a) >= AGREEMENT_KEYS and a["n"] == PANEL
    # 3 candidates are too few for an interval, so no rung can be recommended
    assert result["recommended"] is None and result["study_file"] is None
    assert result["reason"].startswith("undecided:")
    table = run_nas(*_args(data, db), cwd=tmp_path)  # all done: only the table
    assert table.returncode == 0, table.stderr
    assert "Kendall tau" in table.stdout and "synflow" in table.stdout
    assert "same-size tau" in table.stdout and "after epoch 1" in table.stdout
    assert "undecided:" in table.stdout
    assert len(_complete(db)) == PANEL * RUNGS


def _safe_complete(db: Path) -> list[optuna.trial.FrozenTrial]:
    try:
        return _complete(db)
    except Exception:  # the study is not created yet
        return []


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_the_jobs_without_doing_one_twice(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    """Two processes on one study in a real PostgreSQL server (as on two machines)."""
    data = make_image_folder(tmp_path / "imgs", classes=3, per_class=50, test_per_class=4)
    db = postgres.create_database("fidelity_workers")
    res = run_nas(
        *_args(data, db, "--workers", "2", "--json"),
        cwd=tmp_path,
        env={"NAS_SLOW_EPOCH": "0.4"},
    )
    assert res.returncode == 0, res.stderr
    done = _complete(db)
    jobs = Counter((t.user_attrs["candidate"], t.user_attrs["rung"]) for t in done)
    assert len(jobs) == PANEL * RUNGS and set(jobs.values()) == {1}
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both processes trained jobs
    # each finished job numbered once over both processes: [1/9] .. [9/9], none twice
    counted = re.findall(rf"\[(\d+)/{PANEL * RUNGS}\] candidate \d+ \(", res.stderr)
    assert sorted(map(int, counted)) == list(range(1, PANEL * RUNGS + 1)), res.stderr
    assert json.loads(res.stdout)["reference"]["trained"] == PANEL


def test_rungs_read_all_in_any_case() -> None:
    assert Rung.parse("3xALL") == Rung.parse("3xall") == Rung(3, None)
    assert Rung.parse("2xAll:fast") == Rung(2, None, "fast")
    out = run_nas("fidelity", "--ladder", "3xALL,1xeverything", "--show-settings")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "bad rung '1xeverything'" in out.stderr


def test_helpers_are_placed_on_the_gpus_as_search_workers_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With CUDA_VISIBLE_DEVICES=2,3 and two GPUs, this process takes GPU 2 and helper i the
    next placement: GPU 3, then 2 again; each helper gets its one GPU and --device cuda."""
    import subprocess

    import torch

    import nas.cli.fidelity as cli

    started: list[tuple[list[str], dict[str, str]]] = []

    class _Proc:
        def __init__(self, argv: list[str], env: dict[str, str], **_: object) -> None:
            started.append((argv, env))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setattr(subprocess, "Popen", _Proc)
    helpers = cli._start_helpers(2, "auto", ["fidelity", "--workers", "3", "--json"])
    assert [place.gpu for place, _ in helpers] == ["3", "2"]
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in started] == ["3", "2"]
    for argv, _ in started:
        assert argv[-4:] == ["--workers", "1", "--device", "cuda"] and "--json" not in argv


def test_a_failed_helper_fails_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import nas.cli.fidelity as cli
    import nas.fidelity.panel as panel
    from nas.cli.main import main
    from nas.training.placement import Placement

    class _Run:
        def __init__(self, source: object, say: object) -> None:
            from nas.fidelity.settings import FidelitySettings

            self.settings = FidelitySettings(workers=2)
            self.address = type("A", (), {"name": "f"})()
            self.device = "cpu"

        def panel(self) -> list[object]:
            return []

        def jobs(self) -> list[object]:
            return []

        def work(self) -> int:
            return 0

        def summary(self) -> dict[str, object]:
            raise AssertionError("no summary after a helper failed")

    class _Failed:
        returncode = 3

        def poll(self) -> int:
            return 3

        def wait(self) -> int:
            return 3

    monkeypatch.setattr(panel, "FidelityRun", _Run)
    monkeypatch.setattr(cli, "_start_helpers", lambda k, d, c: [(Placement("cpu"), _Failed())])
    code = main(["fidelity", "--workers", "2", "--storage", f"sqlite:///{tmp_path / 'f.db'}"])
    assert code == 2


def test_rungs_and_val_the_data_cannot_hold_are_refused_before_the_study_is_made(
    tmp_path: Path,
) -> None:
    """A rung of more images than the training split holds trains on all of them, the same
    as EPOCHSxall, so the panel would compare a fidelity with itself (the report once gave
    tau +1.00); --val over the validation split likewise. Both are refused as nas search
    refuses its proxy counts, before any study database is made."""
    data = make_image_folder(tmp_path / "imgs", classes=3, per_class=50, test_per_class=4)
    db = tmp_path / "f.db"
    for extra, said in [
        (("--ladder", "1x24,2x500"), "--ladder rung 2x500: this data set has 135 training "
         "images outside its validation split; give at most 135 images per epoch, or 2xall"),
        (("--reference", "3x999"), "--reference rung 3x999: this data set has 135 training"),
        (("--val", "40"), "--val 40: the validation split of this data set holds 15 images; "
         "give at most 15"),
    ]:  # fmt: skip
        out = run_nas(*_args(data, db, *extra), cwd=tmp_path)
        last = out.stderr.strip().splitlines()[-1]  # after "decoding N images" once
        assert out.returncode == 2 and last.startswith(f"nas: error: {said}"), out.stderr
    assert not db.exists()
