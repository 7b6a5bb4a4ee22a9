"""The early stopper on synthetic learning curves."""

from __future__ import annotations

from nas.search.early_stop import CurvePoint, EarlyStopper


def peers(
    curves: list[tuple[float, ...]], params: int = 1000, finished: bool = True
) -> list[CurvePoint]:
    return [CurvePoint(i, params, c, finished) for i, c in enumerate(curves)]


def test_bottom_of_comparable_trials_is_stopped() -> None:
    others = peers(
        [
            (0.50, 0.60, 0.70),
            (0.52, 0.63, 0.71),
            (0.48, 0.58, 0.66),
            (0.55, 0.65, 0.72),
            (0.51, 0.61, 0.69),
            (0.53, 0.62, 0.70),
        ]
    )
    stopper = EarlyStopper(eta=3, min_peers=4, margin=1.0)
    reason = stopper.check(others, params=1000, epoch=1, epochs=3, accuracy=0.30)
    assert reason is not None and "top 1/3" in reason and "6 trials" in reason
    # the top third of 6 peers is the best 2 (0.55, 0.53): 0.53 survives, 0.52 does not
    assert stopper.check(others, params=1000, epoch=1, epochs=3, accuracy=0.53) is None
    assert stopper.check(others, params=1000, epoch=1, epochs=3, accuracy=0.52) is not None
    # with 4 peers (0.55, 0.52, 0.50, 0.48), ceil(4/3) = 2: matching the second best is enough
    assert stopper.check(others[:4], params=1000, epoch=1, epochs=3, accuracy=0.52) is None
    assert stopper.check(others[:4], params=1000, epoch=1, epochs=3, accuracy=0.51) is not None


def test_never_stops_at_the_last_epoch_or_without_enough_peers() -> None:
    others = peers([(0.5, 0.6), (0.5, 0.6), (0.5, 0.6), (0.5, 0.6)])
    stopper = EarlyStopper(margin=1.0)
    assert stopper.check(others, 1000, epoch=2, epochs=2, accuracy=0.1) is None
    assert stopper.check(others[:3], 1000, epoch=1, epochs=2, accuracy=0.1) is None


def test_only_trials_of_comparable_size_are_peers() -> None:
    big = peers([(0.9, 0.95)] * 6, params=100_000)
    stopper = EarlyStopper(size_ratio=2.0, margin=1.0)
    assert stopper.check(big, params=1000, epoch=1, epochs=2, accuracy=0.2) is None
    near = peers([(0.9, 0.95)] * 6, params=1500)
    assert stopper.check(near, params=1000, epoch=1, epochs=2, accuracy=0.2) is not None


def test_dominated_by_a_smaller_finished_trial() -> None:
    stopper = EarlyStopper(min_peers=100)  # only the dominance rule can act
    smaller = [CurvePoint(7, 500, (0.6, 0.7, 0.8), True)]
    reason = stopper.check(smaller, params=1000, epoch=2, epochs=3, accuracy=0.5)
    assert reason is not None and "dominated by trial 7" in reason
    assert (
        stopper.check(smaller, params=400, epoch=2, epochs=3, accuracy=0.5) is None
    )  # not smaller
    running = [CurvePoint(7, 500, (0.6, 0.7), False)]
    assert stopper.check(running, params=1000, epoch=2, epochs=3, accuracy=0.5) is None
    assert stopper.check(smaller, params=1000, epoch=2, epochs=3, accuracy=0.69) is None  # close
