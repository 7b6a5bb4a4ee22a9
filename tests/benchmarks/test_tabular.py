"""The tabular benchmark's arithmetic on a small synthetic table worked out by hand: the
observation, the handover, the regret, the hypervolume ratio, the paired comparison, the
noise calibration, and a search through the real loop."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.tabular import (
    CellSpace,
    Table,
    TableEvaluator,
    calibrate,
    compare,
    front_cells,
    handed_over,
    hypervolume_ratio,
    observed_tau,
    simple_regret,
    tau_cells,
)

#: Two edges of three choices: cell = 3 * first + second. Accuracy of two seeds per cell.
ACC = np.array(
    [
        [0.50, 0.52],  # 0
        [0.60, 0.58],  # 1
        [0.70, 0.74],  # 2: the best feasible (mean 0.72)
        [0.55, 0.55],  # 3
        [0.65, np.nan],  # 4: one seed only
        [0.90, 0.92],  # 5: the best, but over the limit
        [0.40, 0.44],  # 6
        [0.62, 0.60],  # 7
        [0.68, 0.66],  # 8
    ]
)
SIZE = np.array([10, 20, 30, 10, 20, 50, 10, 20, 30], dtype=float)
LIMIT = 30.0


def table() -> Table:
    return Table(ACC, SIZE, SIZE / 1000, choices=("a", "b", "c"), edges=("e0", "e1"))


def test_cells_and_their_parameters() -> None:
    t = table()
    assert t.cell_of({"e0": "b", "e1": "c"}) == 5
    assert t.params_of(5) == {"e0": "b", "e1": "c"}
    assert list(t.seeds) == [2, 2, 2, 2, 1, 2, 2, 2, 2]
    assert t.mean[4] == pytest.approx(0.65) and t.mean[2] == pytest.approx(0.72)
    assert list(np.flatnonzero(~t.feasible(LIMIT))) == [5]


def test_observations_are_one_seed_fixed_by_run_cell_and_count() -> None:
    t = table()
    first, second = t.observe(0, 2, 0), t.observe(0, 2, 1)
    assert {first, second} == {0.70, 0.74}  # a re-evaluation sees the other seed first
    assert t.observe(0, 2, 2) == first  # then they cycle
    assert t.observe(0, 2, 0) == first  # the same for every sampler of run 0
    assert t.observe(3, 4, 5) == 0.65  # a cell of one seed
    assert t.observe(0, 2, 0, exact=True) == pytest.approx(0.72)
    noisy = [t.observe(0, 2, 0, sigma=0.1) for _ in range(2)]
    assert noisy[0] == noisy[1] != first  # the added noise is fixed too


def test_handover_judges_a_re_evaluated_cell_by_its_mean() -> None:
    # cell 8 was lucky once (0.75) then 0.61: mean 0.68 < cell 2's single 0.70
    assert handed_over([(8, 0.75), (2, 0.70), (8, 0.61)]) == 2
    assert handed_over([(8, 0.75), (2, 0.70)]) == 8
    assert handed_over([(1, 0.6), (7, 0.6)]) == 1  # a tie: the first one
    assert handed_over([]) is None


def test_regret_is_the_best_feasible_mean_minus_the_mean_handed_over() -> None:
    t = table()
    assert simple_regret(t, LIMIT, 2) == pytest.approx(0.0)
    assert simple_regret(t, LIMIT, 8) == pytest.approx(0.72 - 0.67)
    assert simple_regret(t, LIMIT, None) == pytest.approx(0.72)


def test_hypervolume_ratio_by_hand() -> None:
    t = table()
    # true feasible front (mean accuracy, size / 30): (0.51, 10/30) no: 3 has 0.55 at 10;
    # front: cell 3 (0.55, 10), cell 4 (0.65, 20) beats 1 (0.59) and 7 (0.61), cell 2 (0.72, 30)
    truth = 0.55 * (20 - 10) + 0.65 * (30 - 20) + 0.72 * (30 - 30)
    assert front_cells({3: (0.55, 10), 4: (0.65, 20), 1: (0.59, 20), 2: (0.72, 30)}) == [3, 4, 2]
    # the search saw cells 0 and 7: its front, at their true means (0.51 at 10, 0.61 at 20)
    found = 0.51 * (20 - 10) + 0.61 * (30 - 20)
    ratio = hypervolume_ratio(t, LIMIT, SIZE, LIMIT, [(0, 0.5), (7, 0.62)])
    assert ratio == pytest.approx(found / truth)
    # observed values choose the front, true values score it: 7 looked worse than 1 here
    fooled = hypervolume_ratio(t, LIMIT, SIZE, LIMIT, [(1, 0.60), (7, 0.59)])
    assert fooled == pytest.approx((0.59 * (30 - 20)) / truth)


def test_paired_comparison_wins_ties_and_wilcoxon() -> None:
    from scipy.stats import wilcoxon

    ours = [1.0, 2.0, 3.0, 0.0, 5.0, 0.5]
    theirs = [3.0, 2.0, 4.0, 1.0, 4.0, 2.5]
    c = compare(ours, theirs)
    assert (c.wins, c.ties, c.losses) == (4, 1, 1)
    assert c.share == pytest.approx(4 / 6)
    expected = wilcoxon([-2.0, -1.0, -1.0, 1.0, -2.0]).pvalue  # the tie left out
    assert c.p_value == pytest.approx(expected)
    assert compare([0.1], [0.1]).p_value is None


def test_noise_calibration_reaches_its_target() -> None:
    rng = np.random.default_rng(0)
    n = 800
    mean = rng.uniform(0.6, 0.9, n)
    acc = np.stack([mean + rng.normal(0, 0.005, n), mean + rng.normal(0, 0.005, n)], axis=1)
    size = rng.uniform(0, 1, n)
    t = Table(acc, size, size, choices=tuple("abcdefghij"), edges=("e0", "e1", "e2"))
    cells = tau_cells(t, 0.5)
    assert 150 < len(cells) < 250  # feasible (half) and above the feasible median (half)
    for target in (0.8, 0.6, 0.45, 0.3):
        sigma = calibrate(t, 0.5, target)
        assert abs(observed_tau(t, cells, sigma) - target) < 0.05
    assert calibrate(t, 0.5, 0.999) == 0.0  # the seed noise alone is already below it


def test_a_search_through_the_real_loop_on_the_table() -> None:
    import optuna

    from nas.search.events import SilentMonitor
    from nas.search.loop import search_loop
    from nas.search.settings import SearchSettings
    from nas.search.study import new_study
    from nas.study.record import TrialRecord
    from nas.study.samplers import make_sampler

    t = table()
    settings = SearchSettings(
        objectives=("accuracy",), limits={"params": LIMIT}, sampler="random", trials=6, seed=1
    )
    study = new_study(settings)
    study.sampler = make_sampler("random", 1, 6)
    search_loop(
        study, settings, CellSpace(t), TableEvaluator(t, 1), SilentMonitor(), lambda _: None
    ).run(SilentMonitor())
    records = [TrialRecord(x) for x in study.trials]
    done = [r for r in records if r.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 6
    for r in records:
        cell = int((r.arch or {})["cell"])
        assert r.params == SIZE[cell]
        assert r.is_rejected == (cell == 5)  # only the cell over the limit
    for r in done:
        cell = int((r.arch or {})["cell"])
        assert r.accuracy in set(ACC[cell][~np.isnan(ACC[cell])])


def test_an_extra_stop_rule_ends_the_loop() -> None:
    """``Hooks.until`` (the search-vs-random benchmark's budget of proxy epochs): the loop asks
    it before every trial and stops on the reason it gives."""
    from nas.search.events import SilentMonitor
    from nas.search.loop import search_loop
    from nas.search.settings import SearchSettings
    from nas.search.study import new_study
    from nas.study.samplers import make_sampler

    t = table()
    settings = SearchSettings(
        objectives=("accuracy",), limits={"params": LIMIT}, sampler="random", trials=6, seed=1
    )
    study = new_study(settings)
    study.sampler = make_sampler("random", 1, 6)
    loop = search_loop(
        study, settings, CellSpace(t), TableEvaluator(t, 1), SilentMonitor(), lambda _: None
    )
    loop.until = lambda stats: "two are enough" if stats.trained >= 2 else ""
    outcome = loop.run(SilentMonitor())
    assert outcome.stop_reason == "two are enough" and outcome.stats.trained == 2
