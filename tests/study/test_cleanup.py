"""Which failed trials give their training slots back."""

from __future__ import annotations

import datetime

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
