"""Trial clean-up shared by every driver of a study (search and fidelity workers).

* :func:`fail_stale`: a trial whose worker stopped sending heartbeats (killed, pre-empted)
  is failed, and retried once (see :class:`nas.study.storage.RetryStaleTrial`).
* :func:`fail_running`: after Ctrl-C or SIGTERM, none of this process's trials stays
  RUNNING; each is failed with the reason.
* :func:`failed_meanwhile`: the trial this process is finishing was failed as stale by
  another worker while its heartbeats could not reach the database.
* :func:`settled_failures`: the failed trials whose training slots may go to new trials.
"""

from __future__ import annotations

import contextlib
import datetime
import warnings
from collections.abc import Collection, Iterable

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.study import _optuna, record

#: Why a trial ended, by the signal that ended its worker.
INTERRUPTED = {
    "SIGINT": "interrupted by the user (Ctrl-C)",
    "SIGTERM": "stopped by SIGTERM (the machine or job was stopped, e.g. pre-empted)",
}


def fail_stale(study: optuna.Study) -> list[int]:
    """Fail (and retry once) the trials whose worker stopped sending heartbeats; returns
    the numbers of those this call failed. Their retries are queued when it returns, so
    their training slots may go at once (:func:`settled_failures` waits a grace period
    for a trial failed elsewhere, whose reason a cached read may not show yet)."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if not running:
        return []
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return [t.number for t in failed if t.number in running]


def retry_interrupted(
    study: optuna.Study, only: Collection[int] | None = None
) -> list[tuple[int, int]]:
    """Queue every trial that Ctrl-C or SIGTERM failed (``only`` those numbered, e.g. the
    interrupted worker's own) for one more try with the same architecture (its parameters),
    once: a retry is not retried again, and a trial already retried is left alone. Returns
    (interrupted trial, its retry) pairs. Call under the study's set-up lock, so that two
    workers starting together queue one retry."""
    trials = study.get_trials(deepcopy=False)
    repeated = {record.TrialRecord(t).retry_of for t in trials}
    out: list[tuple[int, int]] = []
    for t in trials:
        r = record.TrialRecord(t)
        if (
            (only is not None and t.number not in only)
            or t.state != TrialState.FAIL
            or r.fail_reason not in INTERRUPTED.values()
            or r.retried_as is not None
            or r.retry_of is not None
            or t.number in repeated
            or not t.params
        ):
            continue
        record.enqueue_retry(study, t.params, t.number)
        retry = max(x.number for x in study.get_trials(deepcopy=False))
        reason = f"{r.fail_reason}; retried as trial {retry}"
        record.write_results(study, t, record.retry_results(reason, retry))
        out.append((t.number, retry))
    return out


def fail_running(study: optuna.Study, started: Collection[int], reason: str) -> None:
    """None of the trials this process ``started`` may stay RUNNING: each still RUNNING is
    failed with ``reason``."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in started:
            with contextlib.suppress(Exception):  # finished meanwhile
                record.fail_running(study, t, reason)


def failed_meanwhile(study: optuna.Study, started: Collection[int]) -> FrozenTrial | None:
    """The trial this process started last, if it is no longer RUNNING although this process
    never told its result: another worker failed it as stale while its heartbeats could not
    reach the database. Optuna then refuses the result ("Cannot tell a FAIL trial")."""
    if not started:
        return None
    trial = _optuna.trial_by_number(study, max(started))
    return trial if trial is not None and trial.state == TrialState.FAIL else None


def settled_failures(trials: Iterable[FrozenTrial], grace_period: float) -> list[int]:
    """The FAIL trials whose training slots may go to new trials: those that carry their
    reason (``nas`` writes it before it fails a trial, and a dead worker's trial gets it
    once its retry is queued), and those failed longer than ``grace_period`` seconds ago.
    A trial another worker has just failed as stale has no reason yet: its retry is being
    queued, and freeing its slot now would let a new candidate take the slot the retry
    needs, leaving the retry WAITING once the study has its trained trials."""
    now = datetime.datetime.now()
    return [
        t.number
        for t in trials
        if t.state == TrialState.FAIL
        and (
            record.TrialRecord(t).fail_reason is not None
            or t.datetime_complete is None
            or (now - t.datetime_complete).total_seconds() > grace_period
        )
    ]
