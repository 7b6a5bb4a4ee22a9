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
    assert f"http://localhost:{port}/dashboard/" in stdout and "dashboard stopped" in stdout
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
