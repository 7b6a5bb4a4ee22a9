"""``nas dashboard``: a real optuna-dashboard process on a loopback port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from nas.report.figures import FIGURES
from tests.conftest import ROOT, run_nas


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_dashboard_serves_the_study_with_figures_and_notes(
    front_study: tuple[Path, optuna.Study],
) -> None:
    db, _ = front_study
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nas",
            "dashboard",
            "--storage",
            f"sqlite:///{db}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, body = time.time() + 90, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.3)
        assert body is not None, proc.stderr.read() if proc.stderr else ""
        names = [s["study_name"] for s in body["study_summaries"]]
        assert names == ["w"]
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert f"http://127.0.0.1:{port}/dashboard/" in stdout and "dashboard stopped" in stdout
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    study_id = storage.get_study_id_from_name("w")
    attrs = storage.get_study_system_attrs(study_id)
    from optuna_dashboard._custom_plot_data import list_graph_object_ids

    assert set(list_graph_object_ids(attrs)) == {f"nas-{name}" for name in FIGURES}
    notes = [k for k in attrs if k.endswith(":note_ver") and k != "dashboard:note_ver"]
    assert len(notes) == 3  # the three Pareto-optimal trials


def test_dashboard_port_in_use_is_one_line(front_study: tuple[Path, optuna.Study]) -> None:
    db, _ = front_study
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = run_nas(
            "dashboard", "--storage", f"sqlite:///{db}", "--port", str(port), "--no-annotate"
        )
    assert res.returncode != 0 and f"port {port} on 127.0.0.1 is in use" in res.stderr


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_dashboard_bad_port_is_one_line_before_anything_is_written(
    front_study: tuple[Path, optuna.Study], port: str
) -> None:
    db, _ = front_study
    before = db.read_bytes()
    res = run_nas("dashboard", "--storage", f"sqlite:///{db}", "--port", port)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nas: error: argument --port: ")
    assert db.read_bytes() == before  # no figure, no note written


def test_notes_edited_in_the_dashboard_are_kept(front_study: tuple[Path, optuna.Study]) -> None:
    from optuna_dashboard import get_note, save_note

    from nas.dashboard import annotate

    db, _ = front_study
    study = optuna.load_study(study_name="w", storage=f"sqlite:///{db}")
    _, noted, kept = annotate(study)
    assert len(noted) == 3 and kept == 0
    winner = study.trials[noted[0]]
    handle = optuna.trial.Trial(study, winner._trial_id)
    generated = get_note(handle)
    assert generated.startswith(f"## Trial {winner.number}")
    save_note(handle, "my own notes on this one")  # what a person types in the dashboard
    _, _, kept = annotate(study)  # the dashboard restarted
    assert kept == 1 and get_note(handle) == "my own notes on this one"
    other = optuna.trial.Trial(study, study.trials[noted[1]]._trial_id)
    assert get_note(other).startswith(f"## Trial {noted[1]}")  # untouched ones stay generated


def test_report_to_an_unwritable_place_fails_first(
    front_study: tuple[Path, optuna.Study], tmp_path: Path
) -> None:
    db, _ = front_study
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = run_nas(
        "report", "--storage", f"sqlite:///{db}", "--study", "w",
        "--out", str(blocker / "sub" / "report.html"),
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"nas: error: cannot write {blocker / 'sub' / 'report.html'}: {blocker} is a file, "
        "not a folder"
    ]


@pytest.mark.parametrize("command", ["report", "export", "train-winners", "dashboard"])
def test_read_only_commands_do_not_create_a_database(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "none.db"
    args = [command, "--storage", f"sqlite:///{missing}"]
    if command != "dashboard":
        args += ["--study", "s"]
    if command == "export":
        args += ["--best", "--out", str(tmp_path / "best.json")]
    if command == "report":
        args += ["--out", str(tmp_path / "report.html")]
    if command == "train-winners":
        args += ["--pareto", "--epochs", "1"]
    res = run_nas(*args)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"nas: error: the study database {missing} does not exist"
    ]
    assert not missing.parent.exists()
