"""Rank agreement: failed candidates rank last, the analytic tau interval stays open at +-1,
Kendall's tau among candidates of about the same size, and the panel size a tau needs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau

from nas.proxy.ranking import (
    SAME_SIZE_FACTOR,
    agreement,
    candidates_needed,
    ranks,
    tau_interval,
)
from tests.conftest import AGREEMENT_KEYS


def test_a_failed_candidate_ranks_last_instead_of_being_dropped() -> None:
    """Scores 0.9, failed, 0.5 against 3, 1, 2: the failed candidate is last in both
    rankings, so all 3 pairs agree: tau = 1 over n = 3 (dropping it would leave 2)."""
    a = agreement([0.9, None, 0.5], [3, 1, 2])
    assert a["n"] == 3 and a["kendall_tau"] == pytest.approx(1.0)
    assert set(a) == AGREEMENT_KEYS


def test_ranking_a_failed_candidate_last_can_lower_tau() -> None:
    """Scores 0.9, failed, 0.5, 0.7 against 4, 3, 1, 2: the score order is 0 > 3 > 2 > 1,
    the reference's 0 > 1 > 3 > 2. Pairs (0,1) (0,2) (0,3) (2,3) agree, (1,2) (1,3) do not:
    tau = (4 - 2) / 6 = 1/3. Dropping candidate 1 would give tau 1."""
    a = agreement([0.9, None, 0.5, 0.7], [4, 3, 1, 2])
    assert a["n"] == 4
    assert a["kendall_tau"] == pytest.approx(1 / 3)


def test_non_finite_scores_tie_last() -> None:
    """None and NaN tie below 0.5 and 0.7; against 1, 2, 3, 4: 5 concordant pairs, one pair
    tied in the scores only: tau-b = 5 / sqrt((6 - 1) * 6) = 5 / sqrt(30)."""
    a = agreement([None, math.nan, 0.5, 0.7], [1, 2, 3, 4])
    assert a["n"] == 4
    assert a["kendall_tau"] == pytest.approx(5 / math.sqrt(30))
    assert ranks([None, -math.inf, 0.5, math.inf]).tolist() == [0.0, 0.0, 1.0, 0.0]


def test_the_interval_at_tau_one_over_ten_candidates_has_finite_width() -> None:
    """n = 10: P = 45 pairs, tau capped at 44/45; atanh(44/45) = ln(89) / 2 = 2.243665;
    SE = sqrt(0.437 / 6) = 0.269877, 1.645 SE = 0.443947; interval tanh(1.799718) =
    0.946844 to the observed tau, 1 (tanh(2.687612) = 0.990795 would leave tau outside)."""
    a = agreement(list(range(10)), list(range(10)))
    assert a["kendall_tau"] == pytest.approx(1.0)
    assert a["tau_low"] == pytest.approx(0.946844, abs=1e-6)
    assert a["tau_high"] == pytest.approx(1.0)
    assert tau_interval(1.0, 10) == pytest.approx((a["tau_low"], a["tau_high"]))
    low, high = tau_interval(-1.0, 10) or (0.0, 0.0)  # symmetric at -1
    assert (low, high) == pytest.approx((-1.0, -0.946844), abs=1e-6)


def test_the_interval_needs_five_candidates_and_narrows_with_more() -> None:
    assert tau_interval(0.5, 4) is None
    assert agreement([1, 2, 3, 4], [1, 2, 4, 3])["tau_low"] is None
    five, fifty = tau_interval(0.5, 5), tau_interval(0.5, 50)
    assert five is not None and fifty is not None
    assert five[0] < fifty[0] < 0.5 < fifty[1] < five[1]
    # n = 50: atanh(0.5) = 0.549306, 1.645 sqrt(0.437 / 46) = 0.160335; tanh(0.388971) =
    # 0.370473, tanh(0.709641) = 0.610452
    assert fifty == pytest.approx((0.370473, 0.610452), abs=1e-6)


def test_candidates_needed_by_hand() -> None:
    """tau 0.8, target 0.6: atanh(0.8) - atanh(0.6) = 1.098612 - 0.693147 = 0.405465;
    n >= 4 + 0.437 (1.645 / 0.405465)^2 = 4 + 0.437 * 16.4598 = 11.19, so 12."""
    assert candidates_needed(0.8, 0.6) == 12
    low_12 = (tau_interval(0.8, 12) or (0.0, 0.0))[0]
    low_11 = (tau_interval(0.8, 11) or (0.0, 0.0))[0]
    assert low_11 < 0.6 <= low_12
    # tau 13/15 (one swap among 6): 4 + 0.437 (1.645 / 0.623851)^2 = 7.04 -> 8
    assert candidates_needed(13 / 15, 0.6) == 8
    # tau 1: the cap 1 - 1/P decides; n = 5 gives tanh(atanh(0.9) - 1.645 sqrt(0.437)) =
    # 0.367, n = 6 gives tanh(ln(29) / 2 - 1.645 sqrt(0.437 / 2)) = 0.723
    assert candidates_needed(1.0, 0.6) == 6
    assert candidates_needed(0.6, 0.6) is None and candidates_needed(0.3, 0.6) is None
    assert candidates_needed(0.9, 1.0) is None


def test_same_size_tau_counts_only_pairs_within_the_factor() -> None:
    """Sizes 100, 120, 140, 400, 500, 1000: pairs (0,1) (0,2) (1,2) (3,4) are within 1.5x,
    the rest not. Scores order 0 < 2 < 1 and 3 < 4 against reference 0 < 1 < 2 and 3 < 4:
    (0,1) (0,2) (3,4) agree, (1,2) does not: same-size tau (3 - 1) / 4 = 0.5, while the
    badly ranked big candidate 5 pulls the overall tau down."""
    assert SAME_SIZE_FACTOR == 1.5
    scores = [0.1, 0.3, 0.2, 0.5, 0.6, 0.05]
    reference = [1, 2, 3, 4, 5, 6]
    a = agreement(scores, reference, sizes=[100, 120, 140, 400, 500, 1000])
    assert a["same_size_pairs"] == 4
    assert a["same_size_tau"] == pytest.approx(0.5)
    assert a["kendall_tau"] == pytest.approx(kendalltau(scores, reference).statistic)
    assert a["kendall_tau"] != pytest.approx(0.5)
    assert a["same_size_low"] is not None and a["same_size_high"] is not None
    assert -1 < a["same_size_low"] < a["same_size_high"] < 1
    # exactly 1.5x qualifies, just over does not
    assert agreement([1, 2, 3], [1, 2, 3], sizes=[100, 150, 226])["same_size_pairs"] == 1


def test_same_size_tau_is_tau_b_when_every_pair_qualifies() -> None:
    """Sizes within 1.2x: every pair counts. Scores 0.2, 0.2, 0.5 against 1, 2, 3: two
    concordant pairs, one tied in the scores: 2 / sqrt(2 * 3), scipy's tau-b."""
    a = agreement([0.2, 0.2, 0.5], [1, 2, 3], sizes=[100, 110, 120])
    assert a["same_size_pairs"] == 3
    assert a["same_size_tau"] == pytest.approx(2 / math.sqrt(6))
    assert a["same_size_tau"] == pytest.approx(a["kendall_tau"])


def test_same_size_figures_are_null_without_sizes_or_pairs() -> None:
    a = agreement([1, 2, 3], [1, 2, 3])
    assert a["same_size_pairs"] is None and a["same_size_tau"] is None
    b = agreement([1, 2, 3], [1, 2, 3], sizes=[100, 1000, 10000])
    assert b["same_size_pairs"] == 0
    assert b["same_size_tau"] is None and b["same_size_low"] is None


def test_same_size_bootstrap_does_not_collapse_at_one_and_is_reproducible() -> None:
    """A perfect panel of 10 with sizes 1.1x apart: every resample is perfect, but counting
    C + 1/2 and D + 1/2 keeps each below 1, so the interval has width, and it reaches the
    estimate, 1."""
    sizes = [100 * 1.1**i for i in range(10)]
    a = agreement(list(range(10)), list(range(10)), sizes=sizes)
    assert a["same_size_tau"] == pytest.approx(1.0)
    assert a["same_size_low"] is not None and a["same_size_high"] is not None
    assert 0.5 < a["same_size_low"] < a["same_size_high"] == 1.0
    assert agreement(list(range(10)), list(range(10)), sizes=sizes) == a


def test_the_same_size_interval_contains_its_estimate_on_simulated_panels() -> None:
    """250 random panels (8 to 40 candidates, sizes over two orders of magnitude, scores
    from exact to unrelated): every interval contains the tau it is reported with."""
    rng = np.random.default_rng(7)
    missed, checked = [], 0
    for panel in range(250):
        n = int(rng.integers(8, 41))
        truth = rng.normal(size=n)
        scores = truth + rng.normal(0, rng.choice([0.0, 0.3, 1.0, 3.0, 30.0]), n)
        sizes = 10 ** rng.uniform(4, 6, n)
        a = agreement(list(scores), list(truth), sizes=list(sizes), resamples=400, seed=panel)
        tau, low, high = a["same_size_tau"], a["same_size_low"], a["same_size_high"]
        if tau is None or low is None or high is None:
            continue
        checked += 1
        if not low <= tau <= high:
            missed.append((panel, low, tau, high))
    assert checked >= 200 and not missed, missed[:5]


def test_same_size_bootstrap_resamples_candidates() -> None:
    """Shuffled scores over 30 candidates: the interval brackets the estimate."""
    rng = np.random.default_rng(3)
    ref = list(range(30))
    scores = [float(v) + rng.normal(0, 8) for v in ref]
    a = agreement(scores, ref, sizes=[1000 * 1.05**i for i in range(30)])
    assert a["same_size_tau"] is not None
    assert a["same_size_low"] is not None and a["same_size_high"] is not None
    assert a["same_size_low"] < a["same_size_tau"] < a["same_size_high"]


def test_agreement_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="one value per candidate"):
        agreement([1, 2, 3], [1, 2])
