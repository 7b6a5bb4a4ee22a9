"""Many workers on one study: a real PostgreSQL server, a worker killed with SIGKILL."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


@pytest.mark.postgres
def test_three_workers_one_killed_mid_trial(
    postgres: PostgresServer, tiny_space: Path, image_folder: Path
) -> None:
    url = postgres.create_database("three_workers")
    args = worker_args(tiny_space, image_folder, url, 5)
    env = {
        **os.environ,
        "NAS_SLOW_EPOCH": "1.5",
        "PYTHONWARNINGS": "",  # as users run it: no library warning may reach them
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
    later = run_nas(*args, env={"PYTHONWARNINGS": ""})  # finds the work done
    assert later.returncode == 0, later.stderr
    for err in [e for _, e in outs] + [later.stderr]:  # the retry was drawn in one of them
        assert "Warning" not in err, err  # e.g. Optuna's on the constraints a retry carries

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
    # the killed trial's work is redone exactly once (by its retry); two different trials
    # may still propose the same architecture, which TPE is free to do in a tiny space
    assert [t.number for t in study.trials if t.user_attrs.get("retry_of") == victim_trial] == [
        retry.number
    ]  # and no second retry was even started
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
    assert "Pareto front" in out.stdout and "4 trained in this run" in out.stdout
    study = optuna.load_study(study_name="mw", storage=url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    assert len({t.user_attrs["worker"] for t in complete}) == 2
    assert not study.get_trials(states=(TrialState.RUNNING,))


def _two_workers_training(args: list[str], url: str) -> tuple[subprocess.Popen[str], Any]:
    """``nas search --workers 2`` started, once both its workers train a trial."""
    env = {**os.environ, "NAS_SLOW_EPOCH": "3", "PYTHONWARNINGS": "ignore"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "nas", *args], cwd=ROOT, env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 120
    while True:
        if time.time() > deadline:
            launcher.kill()
            raise AssertionError("the workers did not start training in time")
        time.sleep(0.5)
        with contextlib.suppress(Exception):
            study = optuna.load_study(study_name="mw", storage=url)
            if len(study.get_trials(states=(TrialState.RUNNING,))) == 2:
                return launcher, study


def test_workers_whose_launcher_is_killed_stop_and_their_trials_are_retried(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    """A scheduler or the OOM killer kills ``nas search --workers 2`` itself: its workers
    (in sessions of their own) stop as after SIGTERM, so their running trials are recorded
    as interrupted and the next start retries them, instead of training on unwatched and
    failing on the dead log pipe, never retried."""
    from nas.study.cleanup import INTERRUPTED

    url = f"sqlite:///{tmp_path}/p.db"
    args = worker_args(tiny_space, image_folder, url, 4, "--workers", "2")
    launcher, study = _two_workers_training(args, url)
    launcher.kill()
    launcher.wait()
    deadline = time.time() + 60
    while study.get_trials(states=(TrialState.RUNNING,)):  # the workers stop
        assert time.time() < deadline, "the workers outlived their launcher"
        time.sleep(0.5)
    failed = study.get_trials(states=(TrialState.FAIL,))
    seen = [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in study.trials]
    reasons = [t.user_attrs["fail_reason"] for t in failed]
    assert all(r.startswith(f"{INTERRUPTED['SIGTERM']}; retried as trial ") for r in reasons), seen
    retries = {t.number: t.user_attrs["retried_as"] for t in failed}  # queued as they stopped
    again = run_nas(*args[: args.index("--workers")])
    assert again.returncode == 0, again.stderr
    trials = optuna.load_study(study_name=study.study_name, storage=url).trials
    for number, retry in retries.items():
        assert trials[retry].user_attrs["retry_of"] == number
        assert trials[retry].state == TrialState.COMPLETE


def test_a_worker_killed_by_a_signal_gives_the_launchers_exit_code_as_a_shell_would(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    """``kill -9`` of one worker: the launcher waits for the other and exits 137 (128 + 9),
    not -9 turned into 247 by the operating system."""
    url = f"sqlite:///{tmp_path}/k.db"
    launcher, study = _two_workers_training(
        worker_args(tiny_space, image_folder, url, 2, "--workers", "2"), url
    )
    (running, _) = study.get_trials(states=(TrialState.RUNNING,))
    os.kill(int(running.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    assert launcher.wait(timeout=120) == 128 + signal.SIGKILL


#: Imports what a search needs (seconds), says it is ready, waits for the test's common
#: instant, then runs the command line: the processes reach the database within a
#: millisecond of each other, as a job array's do. Without a barrier folder it starts at once.
_AT_ONCE = """
import os, pathlib, sys, time
import nas.cli.search, nas.search.loop, nas.training
from nas.cli.main import main
barrier = sys.argv[1]
if barrier:
    folder = pathlib.Path(barrier)
    (folder / f"ready.{os.getpid()}").touch()
    while not (folder / "go").exists():
        time.sleep(0.001)
    time.sleep(max(0.0, float((folder / "go").read_text() or 0) - time.time()))
sys.exit(main(sys.argv[2:]))
"""


def _popen_at(args: list[str], env: dict[str, str], barrier: Path | None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _AT_ONCE, str(barrier or ""), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def release_together(barrier: Path, n: int, timeout: float = 180) -> None:
    """Wait until ``n`` processes of :func:`_popen_at` are ready, then release them at one
    instant a moment from now."""
    deadline = time.time() + timeout
    while len(list(barrier.glob("ready.*"))) < n:
        assert time.time() < deadline, "the workers did not get ready in time"
        time.sleep(0.05)
    (barrier / "go.tmp").write_text(str(time.time() + 0.2))
    (barrier / "go.tmp").rename(barrier / "go")


def start_together(
    args: list[str], n: int, barrier: Path, env: dict[str, str] | None = None
) -> list[subprocess.Popen[str]]:
    """Start ``nas ARGS`` in ``n`` processes released at the same instant."""
    barrier.mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", **(env or {})}
    procs = [_popen_at(args, env, barrier) for _ in range(n)]
    try:
        release_together(barrier, n)
    except BaseException:
        for p in procs:
            p.kill()
        raise
    return procs


def run_together(args: list[str], n: int, barrier: Path) -> list[tuple[int, str, str]]:
    """Run ``nas ARGS`` in ``n`` processes released at the same instant; their exit codes
    and outputs."""
    procs = start_together(args, n, barrier)
    outs = [p.communicate(timeout=240) for p in procs]
    return [(p.returncode, o, e) for p, (o, e) in zip(procs, outs, strict=True)]


@pytest.mark.postgres
def test_three_workers_started_at_once_on_an_empty_postgres_database(
    postgres: PostgresServer, tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    url = postgres.create_database("at_once")
    results = run_together(worker_args(tiny_space, image_folder, url, 4), 3, tmp_path / "b")
    for code, _, err in results:
        assert code == 0, err
    study = optuna.load_study(study_name="mw", storage=url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4
    assert not study.get_trials(states=(TrialState.RUNNING,))


def test_three_workers_started_at_once_on_a_new_sqlite_file(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/new/at_once.db"
    results = run_together(worker_args(tiny_space, image_folder, url, 3), 3, tmp_path / "b")
    for code, _, err in results:
        assert code == 0, err
    study = optuna.load_study(study_name="mw", storage=url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    # each summary counts its own worker's trials, not the others' trained meanwhile
    said = [re.search(r"(\d+) trained in this run", out) for _, out, _ in results]
    assert sum(int(m.group(1)) for m in said if m) == 3 and all(said)


def _training(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name="mw", storage=url)
    except KeyError:
        return []
    return [
        t for t in study.get_trials(states=(TrialState.RUNNING,)) if t.user_attrs.get("training")
    ]


def wait_for_training(url: str, deadline: float) -> None:
    """Wait until some worker of study ``mw`` is training a trial."""
    while not _training(url):
        assert time.time() < deadline, "no worker started training in time"
        time.sleep(0.2)


@pytest.mark.postgres
def test_chaos_start_together_kill_restart_the_server_and_a_late_worker(
    postgres: PostgresServer, tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    """4 workers started at once on an empty database; one SIGKILLed mid-trial; the server
    restarted mid-search; a late worker joins. Exactly --trials trained, nothing RUNNING,
    no duplicate trial numbers, every failure with its reason."""
    url = postgres.create_database("chaos")
    trials = 6
    args = worker_args(tiny_space, image_folder, url, trials, "--db-retry", "60")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    env["NAS_SLOW_EPOCH"] = "1.0"
    procs = start_together(args, 4, tmp_path / "b", env)
    try:
        deadline = time.time() + 90
        wait_for_training(url, deadline)
        postgres.restart(down_for=2.0)  # every worker loses its connections mid-trial
        victim = None
        while victim is None:
            assert time.time() < deadline, "no worker trained after the restart"
            for t in _training(url):
                pid = int(str(t.user_attrs.get("worker", ":0")).rsplit(":", 1)[1])
                victim = next((p for p in procs if p.pid == pid), None)
                if victim is not None:
                    break
            time.sleep(0.2)
        victim.send_signal(signal.SIGKILL)
        late = _popen_at(args, env, None)
        procs.append(late)
        results = [(p, *p.communicate(timeout=150)) for p in procs if p is not victim]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, _, err in results:
        assert p.returncode == 0, err
        assert "Traceback" not in err
    assert any("lost the study database" in err for _, _, err in results)
    study = optuna.load_study(study_name="mw", storage=url)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == trials
    assert not study.get_trials(states=(TrialState.RUNNING,))
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    for t in study.get_trials(states=(TrialState.FAIL,)):
        assert t.user_attrs.get("fail_reason"), t.number


@pytest.mark.postgres
def test_a_database_gone_for_longer_than_db_retry_is_one_line(
    postgres: PostgresServer, tiny_space: Path, image_folder: Path
) -> None:
    url = postgres.create_database("gone")
    args = worker_args(tiny_space, image_folder, url, 3, "--db-retry", "2")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NAS_SLOW_EPOCH": "1.0"}
    proc = _popen_at(args, env, None)
    try:
        wait_for_training(url, time.time() + 90)
        postgres.restart(down_for=12.0)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("nas: error: lost the study database") and "for more than 2s" in last
    study = optuna.load_study(study_name="mw", storage=url)
    # the trial it was training is left RUNNING, for the heartbeat recovery of any worker
    assert study.get_trials(states=(TrialState.RUNNING,))


@pytest.mark.parametrize("then", ["returns", "writes"])
def test_a_worker_whose_trial_was_failed_as_stale_meanwhile_goes_on(
    tiny_space: Path, image_folder: Path, tmp_path: Path, then: str
) -> None:
    """A live worker's heartbeats could not reach the database for longer than the grace
    period, so another worker failed its trial as stale. When the worker then writes to the
    trial or returns its result, Optuna refuses ("Cannot tell a FAIL trial", or an assertion
    of its own). The worker says so and goes on; the study still gets its trained trials."""
    from nas.search.evaluate import ProxyEvaluator, TrialRun
    from nas.search.loop import Hooks
    from nas.study import _optuna
    from tests.conftest import tiny_search

    failed: list[int] = []

    class FailedElsewhere(ProxyEvaluator):
        def evaluate(self, candidate: Any, label: str, run: TrialRun) -> float:
            result = super().evaluate(candidate, label, run)
            trial = run.trial
            if not failed:  # the first trained trial: another worker fails it meanwhile
                storage = _optuna.rdb_of(trial.study)
                assert storage is not None
                storage.set_trial_user_attr(trial._trial_id, "fail_reason", "stale")
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                failed.append(trial.number)
                if then == "writes":  # e.g. a progress attribute after the failure: refused
                    trial.set_user_attr("late", 1)
            return result

    def make(opened: Any, device: Any) -> ProxyEvaluator:
        return FailedElsewhere.of(opened, device)

    lines: list[str] = []
    study = tiny_search(
        tiny_space,
        image_folder,
        tmp_path / "s.db",
        f"stale_{then}",
        trials=2,
        proxy_epochs=1,
        log=lines.append,
        hooks=Hooks(make_evaluator=make),
    )
    assert any(
        f"trial {failed[0]} finished here, but another worker had already failed it" in line
        for line in lines
    ), lines
    assert study.trials[failed[0]].state == TrialState.FAIL
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert not study.get_trials(states=(TrialState.RUNNING,))
