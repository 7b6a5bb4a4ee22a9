"""The stopping replay: the recorded curves it ships with, and its arithmetic on curves whose
answer is known."""

from __future__ import annotations

from benchmarks.stopping_replay import CURVES, Candidate, evaluate, final_front, load, replay
from nas.search.early_stop import SuccessiveHalving


def test_the_recorded_curves_are_real_runs_of_at_least_32_candidates_and_8_epochs() -> None:
    found = load(CURVES)
    assert len(found) >= 32
    assert all(len(c.curve) >= 8 and all(0.0 < a < 1.0 for a in c.curve) for c in found)
    assert len({c.curve for c in found}) == len(found)  # no copies
    assert len(load(CURVES, epochs=3)[0].curve) == 3


def _steady(n: int, epochs: int) -> list[Candidate]:
    """Candidate k is k-th best at every epoch, all of one size: ranks never cross."""
    return [
        Candidate(k, 1000.0, tuple(0.1 + 0.01 * k + 0.02 * e for e in range(epochs)), 1.0)
        for k in range(n)
    ]


def test_steady_curves_never_lose_the_best_and_save_what_the_rungs_allow() -> None:
    candidates = _steady(12, 4)
    stopper = SuccessiveHalving(eta=2, min_epochs=1, min_members=1)
    result = evaluate(candidates, stopper, workers=1, orders=30, seed=0)
    assert result["best_stopped"] == 0.0
    assert result["saved_median"] > 0.0
    assert final_front(candidates) == {11}


def test_a_late_bloomer_is_stopped_when_it_arrives_last() -> None:
    """The eventual best is the worst after epoch 1; arriving after everyone else (one
    worker, so the others finished), it is stopped at the first rung."""
    candidates = _steady(8, 4)
    late = Candidate(99, 1000.0, (0.01, 0.5, 0.7, 0.9), 1.0)
    order = [c.number for c in candidates] + [99]
    stopper = SuccessiveHalving(eta=2, min_epochs=1, min_members=1)
    result = replay([*candidates, late], order, stopper, workers=1)
    assert 99 in result.stopped
    assert result.epochs < 9 * 4
