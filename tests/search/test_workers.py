"""Many workers on one study: a real PostgreSQL server, a worker killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from tests.conftest import ROOT, run_nas
from tests.pgserver import PostgresServer

pytestmark = [pytest.mark.slow]


def worker_args(space: Path, data: Path, url: str, trials: int, *extra: str) -> list[str]:
    return [
        "search", "--space", str(space), "--dataset", "imagefolder", "--data-dir", str(data),
        "--trials", str(trials), "--proxy-epochs", "2", "--storage", url, "--study", "mw",
        "--seed", "0", "--device", "cpu", "--quiet", "--grace-period", "4",
        "--no-early-stopping", *extra,
    ]  # fmt: skip


def arch_key(t: optuna.trial.FrozenTrial) -> str:
    return json.dumps(t.user_attrs["arch"], sort_keys=True)


@pytest.mark.postgres
def test_three_workers_one_killed_mid_trial(
    postgres: PostgresServer, tiny_space: Path, image_folder: Path
) -> None:
    url = postgres.create_database("three_workers")
    args = worker_args(tiny_space, image_folder, url, 5)
    env = {
        **os.environ,
        "NAS_SLOW_EPOCH": "1.5",
        "PYTHONWARNINGS": "ignore",
        "OMP_NUM_THREADS": "1",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "nas", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    victim_trial, victim = None, None
    try:
        deadline = time.time() + 180
        while victim is None:
            assert time.time() < deadline, "no worker started training in time"
            time.sleep(0.3)
            try:
                study = optuna.load_study(study_name="mw", storage=url)
            except KeyError:
                continue
            for t in study.get_trials(states=(TrialState.RUNNING,)):
                pid = int(str(t.user_attrs.get("worker", ":0")).rsplit(":", 1)[1])
                owner = next((p for p in procs if p.pid == pid), None)
                if t.user_attrs.get("training") and owner is not None:
                    victim_trial, victim = t.number, owner
                    break
        victim.send_signal(signal.SIGKILL)
        others = [p for p in procs if p is not victim]
        outs = [p.communicate(timeout=240) for p in others]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert victim.wait() == -signal.SIGKILL
    for p, (_, err) in zip(others, outs, strict=True):
        assert p.returncode == 0, err
    later = run_nas(*args)  # a worker started after the crash finds the work done
    assert later.returncode == 0, later.stderr

    study = optuna.load_study(study_name="mw", storage=url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 5  # exactly --trials, not overshot
    assert not study.get_trials(states=(TrialState.RUNNING,))
    killed = study.trials[victim_trial]
    assert killed.state == TrialState.FAIL
    assert "sent no heartbeat for 4s" in killed.user_attrs["fail_reason"]
    retry = study.trials[killed.user_attrs["retried_as"]]
    assert retry.system_attrs["failed_trial"] == victim_trial
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["retry_of"] == victim_trial
    assert len({arch_key(t) for t in complete}) == len({t.number for t in complete})
    assert len({t.user_attrs["worker"] for t in complete}) >= 2  # work was shared
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT trial_number FROM nas_training_slots WHERE study_name = 'mw'")
        ).all()
    engine.dispose()
    assert sorted(r[0] for r in rows) == sorted(t.number for t in complete)


def test_local_workers_on_sqlite_warn_and_share_the_study(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    out = run_nas(
        *worker_args(tiny_space, image_folder, url, 4, "--workers", "2"),
        env={"NAS_SLOW_EPOCH": "0.5"},
    )
    assert out.returncode == 0, out.stderr
    assert "workers on SQLite: Optuna advises against SQLite for parallel work" in out.stderr
    assert "[worker 0 cpu]" in out.stderr and "[worker 1 cpu]" in out.stderr
    assert "Pareto front" in out.stdout
    study = optuna.load_study(study_name="mw", storage=url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    assert len({t.user_attrs["worker"] for t in complete}) == 2
    assert not study.get_trials(states=(TrialState.RUNNING,))
