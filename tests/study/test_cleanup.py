"""Which failed trials give their training slots back."""

from __future__ import annotations

import datetime
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from nas.study.cleanup import settled_failures
from nas.study.record import FAIL_REASON


def _trial(number: int, state: TrialState, seconds_ago: float, reason: str | None) -> FrozenTrial:
    t = create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None)
    t.number = number
    t.datetime_complete = datetime.datetime.now() - datetime.timedelta(seconds=seconds_ago)
    if reason is not None:
        t.set_user_attr(FAIL_REASON, reason)
    return t


def test_a_trial_failed_a_moment_ago_without_its_reason_keeps_its_slot() -> None:
    """Another worker has just failed it as stale and is queuing its retry: its slot is the
    retry's. With its reason written, or once the grace period has passed, the slot goes."""
    trials = [
        _trial(0, TrialState.FAIL, 1, "worker w sent no heartbeat for 4s; retried as trial 4"),
        _trial(1, TrialState.FAIL, 1, None),  # being failed right now
        _trial(2, TrialState.FAIL, 120, None),  # its failing worker died: after the grace
        _trial(3, TrialState.COMPLETE, 1, None),
    ]
    assert settled_failures(trials, grace_period=60) == [0, 2]


def test_a_dead_workers_trial_names_its_worker_in_its_reason(tmp_path: Path) -> None:
    """``worker host:pid sent no heartbeat ...``; a trial that recorded no worker reads
    ``its worker sent ...`` (it once read ``worker its worker``)."""
    from nas.study.storage import RetryStaleTrial

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/r.db")
    for worker, said in (("host:1", "worker host:1"), (None, "its worker")):
        study = optuna.create_study(storage=storage)  # written behind its cache: read anew
        trial = study.ask()
        if worker is not None:
            trial.set_user_attr("worker", worker)
        study.tell(trial, state=TrialState.FAIL)
        RetryStaleTrial(4)(study, study.trials[trial.number])
        written = optuna.load_study(study_name=study.study_name, storage=storage.url)
        reason = written.trials[trial.number].user_attrs["fail_reason"]
        assert reason.startswith(f"{said} sent no heartbeat for 4s (killed or pre-empted); ")


def test_the_retry_of_a_retry_names_the_trial_it_repeats(tmp_path: Path) -> None:
    """Trial 0 is stopped by SIGTERM and retried as 1; trial 1's worker dies: the retry of
    trial 1 repeats trial 1 (Optuna copies trial 1's own ``retry_of``, 0, onto it), so the
    summary says 'trial 1 as 2', not 'trial 0 as 2'."""
    from nas.study.record import TrialRecord, enqueue_retry
    from nas.study.storage import RetryStaleTrial

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/r.db")
    study = optuna.create_study(storage=storage)
    first = study.ask()
    first.suggest_int("x", 0, 9)
    study.tell(first, state=TrialState.FAIL)  # interrupted: nas queues its retry
    enqueue_retry(study, study.trials[0].params, 0)
    retry = study.ask()  # trial 1, whose worker then dies
    study.tell(retry, state=TrialState.FAIL)
    RetryStaleTrial(4)(study, study.trials[retry.number])
    written = optuna.load_study(study_name=study.study_name, storage=storage.url)
    assert [TrialRecord(t).retry_of for t in written.trials] == [None, 0, 1]


def test_fail_stale_names_the_trials_it_failed_so_their_slots_go_at_once(tmp_path: Path) -> None:
    """The worker that fails a dead worker's trial has queued its retry when fail_stale
    returns: it frees the slot then (it waited another grace period, for the reason that
    its cached read of the trial did not show yet)."""
    import time

    from nas.study import _optuna
    from nas.study.cleanup import fail_stale
    from nas.study.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path}/h.db", grace_period=1)
    study = optuna.create_study(storage=storage)
    dead, alive = study.ask(), study.ask()
    storage.record_heartbeat(_optuna.trial_id(dead))
    time.sleep(2.2)
    storage.record_heartbeat(_optuna.trial_id(alive))
    assert fail_stale(study) == [dead.number]
    assert fail_stale(study) == []  # once
    assert study.trials[alive.number].state == TrialState.RUNNING
