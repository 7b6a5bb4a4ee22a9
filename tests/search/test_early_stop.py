"""Multi-objective successive halving on synthetic learning curves."""

from __future__ import annotations

import random

import pytest

from nas.errors import NasError
from nas.search.early_stop import CurvePoint, SuccessiveHalving, fronts


def members(points: list[tuple[float, float]], epochs: int = 4) -> list[CurvePoint]:
    """Trials that reached epoch 1 with the given (accuracy, cost)."""
    return [CurvePoint(i, cost, (acc,) * epochs) for i, (acc, cost) in enumerate(points)]


def test_rungs_are_geometric_and_before_the_last_epoch() -> None:
    assert SuccessiveHalving(eta=2).rungs(4) == [1, 2]
    assert SuccessiveHalving(eta=3).rungs(4) == [1, 3]
    assert SuccessiveHalving(eta=3).rungs(3) == [1]
    assert SuccessiveHalving(eta=2, min_epochs=2).rungs(10) == [2, 4, 8]
    assert SuccessiveHalving(eta=3).rungs(1) == []  # one epoch: nothing to save
    with pytest.raises(NasError, match="--eta must be greater than 1"):
        SuccessiveHalving(eta=1)
    with pytest.raises(NasError, match="--min-epochs must be at least 1"):
        SuccessiveHalving(min_epochs=0)


def test_fronts() -> None:
    # (accuracy, cost): 0 and 1 trade off; 2 is beaten by 0 (cheaper, better); 3 by all
    assert fronts([(0.5, 1.0), (0.6, 2.0), (0.4, 1.5), (0.3, 3.0)]) == [0, 0, 1, 2]
    # equal accuracy does not beat: both stay on the first front
    assert fronts([(0.5, 1.0), (0.5, 2.0)]) == [0, 0]


def test_a_trial_is_never_stopped_by_costlier_ones() -> None:
    """The issue's case: a 1.0M trial at 0.40 among 1.8M peers at 0.44 is the best at 1.0M."""
    sha = SuccessiveHalving(eta=3)
    others = members([(0.44, 1.8e6)] * 8)
    decision = sha.decide(others, cost=1.0e6, epoch=1, epochs=4, accuracy=0.40)
    assert decision is not None and not decision.stop
    # the same accuracy at 1.9M is beaten by the cheaper peers and is not in the top 3 of 9
    decision = sha.decide(others, cost=1.9e6, epoch=1, epochs=4, accuracy=0.40)
    assert decision is not None and decision.stop
    assert "not in the top 3 of 9" in decision.reason and "1.80M params" in decision.reason


def test_the_top_share_goes_on_and_no_decision_off_the_rungs() -> None:
    sha = SuccessiveHalving(eta=3)
    # six cheaper trials: the candidate is beaten by all of those more accurate than it
    others = members([(0.55, 1.0), (0.53, 1.0), (0.52, 1.0), (0.51, 1.0), (0.50, 1.0), (0.48, 1.0)])
    # 7 members -> keep floor(7/3) = 2 by (front, accuracy)
    assert not sha.decide(others, 2.0, 1, 4, 0.54).stop  # type: ignore[union-attr]
    assert sha.decide(others, 2.0, 1, 4, 0.525).stop  # type: ignore[union-attr]
    assert sha.decide(others, 2.0, 2, 4, 0.10) is None  # epoch 2 is no rung at eta 3
    assert sha.decide(others, 2.0, 4, 4, 0.10) is None  # nor the last epoch


def test_one_objective_is_optunas_successive_halving() -> None:
    """No cost: keep the top floor(n/eta), and the best so far while n < eta."""
    sha = SuccessiveHalving(eta=3, cost_names=())
    first = members([(0.5, 0.0)])
    assert not sha.decide(first, 0.0, 1, 4, 0.6).stop  # type: ignore[union-attr]  # best so far
    assert sha.decide(first, 0.0, 1, 4, 0.4).stop  # type: ignore[union-attr]  # n=2 < eta
    nine = members([(a / 10, 0.0) for a in range(8)])  # 0.0 .. 0.7; with the trial: 9
    assert not sha.decide(nine, 0.0, 1, 4, 0.55).stop  # type: ignore[union-attr]  # 3rd of 9
    assert sha.decide(nine, 0.0, 1, 4, 0.45).stop  # type: ignore[union-attr]  # 4th of 9


def test_no_stop_without_a_cheaper_better_trial_at_the_rung_random() -> None:
    """The acceptance property on 2,000 random rungs: whenever the stopper stops a trial,
    some member of no higher cost had a strictly higher accuracy at that rung."""
    rng = random.Random(0)
    stops = 0
    for _ in range(2000):
        sha = SuccessiveHalving(eta=rng.choice([2.0, 3.0, 4.0]))
        n = rng.randint(0, 15)
        pts = [(round(rng.random(), 2), float(rng.randint(1, 6))) for _ in range(n)]
        acc, cost = round(rng.random(), 2), float(rng.randint(1, 6))
        decision = sha.decide(members(pts), cost, 1, 4, acc)
        assert decision is not None
        if decision.stop:
            stops += 1
            assert any(c <= cost and a > acc for a, c in pts)
    assert stops > 300  # the property was exercised


@pytest.mark.parametrize("min_members", [1, 3, 5])
def test_no_trial_is_stopped_at_a_rung_with_fewer_than_the_minimum_members(
    min_members: int,
) -> None:
    """3,000 random arrival sequences at the first rung of a 4-epoch proxy, eta 2: a trial
    that meets fewer than ``min_members - 1`` others there always goes on; with the minimum
    met, some are stopped (the rule still bites)."""
    rng = random.Random(0)
    stopper = SuccessiveHalving(eta=2, min_epochs=1, min_members=min_members)
    stopped_with, went_on_with = set(), set()
    for _ in range(3000):
        others = [
            CurvePoint(i, float(rng.randint(1, 5)), (rng.random(),))
            for i in range(rng.randint(0, 6))
        ]
        decision = stopper.decide(others, float(rng.randint(1, 5)), 1, 4, rng.random())
        assert decision is not None
        n = len(others) + 1
        (stopped_with if decision.stop else went_on_with).add(n)
    assert min(stopped_with) >= max(min_members, 2)
    assert all(n in went_on_with for n in range(1, min_members))
