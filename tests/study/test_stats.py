"""What the summary, the report and the dashboard say about a study: the best trial (on the
front), the hypervolume, and how the guided trials compare with the random start-up ones,
on made-up studies whose numbers are worked out by hand."""

from __future__ import annotations

import datetime
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from nas.report.figures import history_figure, startup_runs
from nas.study.nsga2 import RejectionAwareNSGAII
from nas.study.samplers import TPE_STARTUP
from nas.study.stats import (
    MIN_COMPARED_TRIALS,
    best_trial,
    choose_best,
    hypervolume,
    pareto_front,
    sampled_by,
    startup_comparison,
    study_startup_comparison,
    study_stats,
)
from nas.units import plural

T0 = datetime.datetime(2026, 1, 1, 12, 0)
X: dict[str, BaseDistribution] = {"x": FloatDistribution(0, 1)}


def _trial(
    number: int,
    kind: str,
    acc: float | None = None,
    params: int = 0,
    *,
    attrs: dict[str, Any] | None = None,
    system_attrs: dict[str, Any] | None = None,
) -> FrozenTrial:
    """A trial as the objective leaves it, started at minute ``number`` and finished half a
    minute later (so trial n starts after n trials finished)."""
    user = {"params": params, "flops": 10 * params, **(attrs or {})}
    state = TrialState.COMPLETE
    values: list[float] | None = None
    if kind == "complete":
        assert acc is not None
        user |= {"accuracy": acc, "curve": [acc], "arch": {}}
        values = [acc, float(params)]
    elif kind == "stopped":
        state = TrialState.PRUNED
        user |= {"accuracy": acc, "curve": [acc], "stopped_early": "a cheaper trial was better"}
        user |= {"stopped_at_epoch": 1}
    elif kind == "rejected":
        state = TrialState.PRUNED
        user["rejected"] = f"{params} params > limit 1000"
    else:
        state = TrialState.FAIL
        user["fail_reason"] = "loss is NaN at epoch 1"
    t = create_trial(
        state=state,
        values=values,
        params={"x": number / 100},
        distributions=X,
        user_attrs=user,
        system_attrs=system_attrs or {},
    )
    t.number = number
    t.datetime_start = T0 + datetime.timedelta(minutes=number)
    t.datetime_complete = t.datetime_start + datetime.timedelta(seconds=30)
    return t


# (kind, accuracy, params) by trial number; the parameter limit is 1,000.
ROWS: list[tuple[str, float | None, int]] = [
    ("complete", 0.50, 400),  # 0
    ("complete", 0.60, 800),  # 1
    ("rejected", None, 1500),  # 2: counts for TPE (PRUNED)
    ("complete", 0.55, 300),  # 3
    ("stopped", 0.40, 200),  # 4: trained, not COMPLETE
    ("complete", 0.60, 500),  # 5
    ("failed", None, 300),  # 6: FAIL does not count for TPE, so trial 10 is still random
    ("complete", 0.45, 200),  # 7
    ("complete", 0.52, 600),  # 8
    ("complete", 0.58, 900),  # 9
    ("complete", 0.62, 700),  # 10: start-up (9 COMPLETE/PRUNED finished before it)
    ("complete", 0.66, 600),  # 11: guided
    ("complete", 0.70, 900),  # 12
    ("complete", 0.64, 350),  # 13
    ("rejected", None, 1200),  # 14
    ("complete", 0.66, 650),  # 15: dominated by 11
]


def made_up_study(
    rows: list[tuple[str, float | None, int]] = ROWS, sampler: str = "tpe"
) -> optuna.Study:
    study = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(), directions=["maximize", "minimize"]
    )
    study.set_metric_names(["val_accuracy", "params"])
    study.set_user_attr(
        "nas_settings", {"sampler": sampler, "param_limit": 1000, "dataset": "imagefolder"}
    )
    for number, (kind, acc, params) in enumerate(rows):
        study.add_trial(_trial(number, kind, acc, params))
    return study


# --------------------------------------------------------------------------- best on the front
def test_best_is_on_the_front_when_accuracies_tie() -> None:
    # trial 0 and trial 1 tie on accuracy; trial 1 is cheaper, so trial 0 is not on the front
    study = made_up_study([("complete", 0.6, 900), ("complete", 0.6, 500), ("complete", 0.5, 100)])
    stats = study_stats(study)
    assert {t.number for t in stats.pareto} == {1, 2}
    assert stats.best is not None and stats.best.number == 1
    assert stats.best.number in {t.number for t in stats.pareto}
    assert study_stats(study, front=False).best.number == 1  # type: ignore[union-attr]
    best, _ = choose_best(study.trials)  # the report header's and nas export's rule
    assert best.number == 1


def test_best_ties_on_cost_too_go_to_the_earlier_trial() -> None:
    study = made_up_study([("complete", 0.6, 500), ("complete", 0.6, 500)])
    assert best_trial(study.trials).number == 0  # type: ignore[union-attr]
    assert {t.number for t in pareto_front(study.trials)} == {0, 1}


def test_best_by_flops_when_that_is_the_second_objective() -> None:
    trials = [_trial(0, "complete", 0.6, 500), _trial(1, "complete", 0.6, 400)]
    trials[1].user_attrs["flops"] = 99_999  # cheaper in params, costlier in FLOPs
    assert best_trial(trials, "params").number == 1  # type: ignore[union-attr]
    assert best_trial(trials, "flops").number == 0  # type: ignore[union-attr]


# --------------------------------------------------------------------------- hypervolume
def test_hypervolume_by_hand() -> None:
    # steps: 0.5 over cost [100, 300), 0.8 over [300, 1000): (0.5 * 200 + 0.8 * 700) / 1000
    assert hypervolume([(0.5, 100), (0.8, 300)], 1000) == pytest.approx(0.66)
    # a dominated point and a point over the limit change nothing; the order does not matter
    assert hypervolume([(0.8, 300), (0.4, 500), (0.9, 1200), (0.5, 100)], 1000) == pytest.approx(
        0.66
    )
    assert hypervolume([], 1000) == 0.0
    assert hypervolume([(1.0, 0)], 1000) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        hypervolume([(0.5, 1)], 0)


# --------------------------------------------------------------------------- guided vs start-up
def test_sampled_by_is_derived_from_finish_times_for_tpe() -> None:
    how = sampled_by(made_up_study().trials, "tpe")
    assert TPE_STARTUP == 10
    assert [n for n, h in how.items() if h == "startup"] == list(range(11))
    assert [n for n, h in how.items() if h == "guided"] == list(range(11, 16))


def test_sampled_by_other_samplers_and_recorded_values() -> None:
    trials = made_up_study().trials
    assert set(sampled_by(trials, "random").values()) == {"startup"}
    trials[3].user_attrs["sampled_by"] = "enqueued"  # what the objective records wins
    trials[12].user_attrs["sampled_by"] = "retry"
    how = sampled_by(trials, "tpe")
    assert how[3] == "enqueued" and how[12] == "retry" and how[11] == "guided"
    queued = _trial(16, "complete", 0.9, 100, system_attrs={"fixed_params": {"x": 0.5}})
    key = RejectionAwareNSGAII.generation_key()  # the key the project's sampler writes
    nsga = [
        _trial(0, "complete", 0.5, 100, system_attrs={key: 0}),
        _trial(1, "complete", 0.5, 100, system_attrs={key: 1}),
        queued,
    ]
    assert sampled_by(nsga, "nsga2") == {0: "startup", 1: "guided", 16: "enqueued"}
    # Optuna's own NSGA-II writes another key: the project's sampler never reads it
    assert key == "RejectionAwareNSGAII:generation" != "NSGAIISampler:generation"


def test_startup_comparison_numbers_by_hand() -> None:
    c = study_startup_comparison(made_up_study())
    assert (c.sampler, c.second, c.limit, c.others) == ("tpe", "params", 1000.0, 0)
    # start-up: trials 0-10, trained 0, 1, 3, 4 (stopped), 5, 7, 8, 9, 10
    assert c.startup.trained == 9
    assert (c.startup.best_trial, c.startup.best_accuracy) == (10, 0.62)
    assert set(c.startup.front) == {7, 3, 5, 10}
    # 0.45 * (300 - 200) + 0.55 * (500 - 300) + 0.60 * (700 - 500) + 0.62 * (1000 - 700)
    assert c.startup.hypervolume == pytest.approx(0.461)
    # guided: trials 11, 12, 13, 15 (14 was rejected)
    assert c.guided.trained == 4
    assert (c.guided.best_trial, c.guided.best_accuracy) == (12, 0.70)
    assert set(c.guided.front) == {13, 11, 12}
    # 0.64 * (600 - 350) + 0.66 * (900 - 600) + 0.70 * (1000 - 900)
    assert c.guided.hypervolume == pytest.approx(0.428)
    assert c.gain == pytest.approx(0.08) and c.compared
    assert c.verdict == (
        "the guided trials found trial 12 at 0.7000 (+8.0 points over the best start-up "
        "trial, trial 10 at 0.6200); hypervolume of their fronts: guided 0.428, start-up "
        "0.461 (4 guided and 9 start-up trained trials)"
    )


def test_startup_comparison_when_the_guided_trials_do_worse() -> None:
    rows = [*ROWS[:11], ("complete", 0.61, 100), ("complete", 0.3, 100), ("complete", 0.5, 100)]
    c = study_startup_comparison(made_up_study(rows))
    assert c.gain == pytest.approx(-0.01)
    assert c.verdict.startswith(
        "the guided trials found nothing better: their best, trial 11 at 0.6100, is 1.0 point "
        "below the best start-up trial, trial 10 at 0.6200; "
    )


def test_startup_comparison_counts_neither_enqueued_nor_retried_trials() -> None:
    trials = made_up_study().trials
    trials[12].user_attrs["sampled_by"] = "enqueued"  # the guided best was a preset
    c = startup_comparison(trials, "params", 1000)
    assert c.others == 1 and c.guided.trained == 3
    assert (c.guided.best_trial, c.guided.best_accuracy) == (11, 0.66)


@pytest.mark.parametrize(
    ("rows", "sampler", "verdict"),
    [
        (
            ROWS[:12],
            "tpe",
            "too few trials to compare: 9 start-up, 1 guided trained trials; need at least 3 "
            "trained trials with an accuracy in each group",
        ),
        (
            ROWS,
            "random",
            "too few trials to compare: 13 start-up, 0 guided trained trials; need at least 3 "
            "trained trials with an accuracy in each group (the random sampler samples every "
            "trial at random)",
        ),
        (
            ROWS[:1],
            "tpe",
            "too few trials to compare: 1 start-up, 0 guided trained trial; need at least 3 "
            "trained trials with an accuracy in each group",
        ),
    ],
)
def test_too_few_trials_to_compare(
    rows: list[tuple[str, float | None, int]], sampler: str, verdict: str
) -> None:
    c = study_startup_comparison(made_up_study(rows, sampler))
    assert MIN_COMPARED_TRIALS == 3
    assert not c.compared and c.gain is None
    assert c.verdict == verdict


def test_plural() -> None:
    assert plural(1, "trained trial") == "1 trained trial"
    assert plural(2, "full epoch") == "2 full epochs"
    assert plural(1_000, "trial") == "1,000 trials"


# --------------------------------------------------------------------------- where it shows
def test_history_shades_the_startup_phase() -> None:
    study = made_up_study()
    assert startup_runs(study.trials, "tpe") == [(0, 10)]
    fig = history_figure(study)
    (band,) = fig.layout.shapes
    assert (band.type, band.x0, band.x1) == ("rect", -0.5, 10.5)
    labels = [a.text for a in fig.layout.annotations]
    assert labels == ["random start-up (trials 0-10)"]


def test_history_of_a_random_search_is_all_startup() -> None:
    study = made_up_study(sampler="random")
    assert startup_runs(study.trials, "random") == [(0, 15)]
    (band,) = history_figure(study).layout.shapes
    assert (band.x0, band.x1) == (-0.5, 15.5)


def test_end_of_search_summary_says_how_guided_trials_did(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from nas.cli.search import print_summary

    study = made_up_study()
    outcome = SimpleNamespace(
        study=study,
        stats=study_stats(study),
        stop_reason="the study has 13 trained trials",
        seconds=10.0,
        trained_now=13,
        interrupted=False,
        has_test=True,
        address=SimpleNamespace(url="sqlite:///s.db"),
        had_enough=False,
    )
    from nas.search.settings import SearchSettings

    print_summary(outcome, SearchSettings(device="cpu"))  # type: ignore[arg-type]
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "guided vs random start-up: the guided trials found trial 12 at 0.7000 (+8.0 points over "
        "the best start-up trial, trial 10 at 0.6200)" in out
    )
    assert "best: trial 12, val acc 0.7000" in out
    assert (
        f"next: nas train-winners --storage sqlite:///s.db --study {study.study_name} --top-k 3 "
        "--epochs 1 --device cpu # a first look" in out
    )


def test_a_candidate_evaluated_twice_is_judged_by_its_mean_and_listed_once() -> None:
    """The local sampler evaluates a promising candidate again: a lucky first run must not
    make it the best, and the front (and so the winners) must not list it twice."""
    from nas.study.stats import mean_accuracies

    def run(number: int, w: int, accuracy: float) -> FrozenTrial:
        t = _trial(number, "complete", accuracy, 200_000)
        t.params = {"x": w / 100}  # the same candidate sampled twice: the same parameters
        return t

    trials = [
        run(0, 16, 0.70),  # a lucky first run of candidate 16 ...
        run(1, 32, 0.66),
        run(2, 16, 0.60),  # ... and its second: mean 0.65
    ]
    assert mean_accuracies(trials) == {0: pytest.approx(0.65), 1: 0.66}
    best = best_trial(trials)
    assert best is not None and best.number == 1
    assert [t.number for t in pareto_front(trials)] == [1]
    best_choice, _ = choose_best(trials)
    assert best_choice.number == 1


def test_an_interrupted_trial_is_no_sampled_candidate_in_the_rejection_rates() -> None:
    """Ctrl-C during a run of rejections fails the running trial; it is tried again, so it
    must not dilute the last third's rejection rate (it read 86% for 100% rejected)."""
    from nas.study.cleanup import INTERRUPTED
    from nas.study.stats import rejection_thirds

    trials = [_trial(n, "rejected", params=2000) for n in range(15)]
    stopped, retried = _trial(15, "failed"), _trial(16, "failed")
    stopped.set_user_attr("fail_reason", INTERRUPTED["SIGINT"])
    retried.set_user_attr("fail_reason", INTERRUPTED["SIGTERM"] + "; retried as trial 17")
    assert rejection_thirds([*trials, stopped, retried]) == (1.0, 1.0)
    assert rejection_thirds([*trials, _trial(15, "failed"), _trial(16, "failed")])[1] == 3 / 5


def test_a_front_against_latency_holds_the_trials_of_the_latest_context() -> None:
    """After --remeasure (batch 1 -> 4) a trial measured at batch 1 does not compare: it
    once dominated the new trials from the summary's front by its smaller batch-1 value.
    Every reader agrees on the context (a rejected or running trial of a new context moves
    nothing), and trials that name no context count as the first one once another exists."""
    from nas.presets import preset
    from nas.report.html import _proxy_cell
    from nas.study.stats import (
        candidate_runs,
        comparable_contexts,
        mean_accuracies,
        mean_accuracy,
        pareto_front,
    )

    def trial(name: str, accuracy: float, latency: float, context: str | None) -> FrozenTrial:
        attrs = {"arch": preset(name).to_dict(), "accuracy": accuracy, "params": 1000,
                 "latency": latency}  # fmt: skip
        if context is not None:
            attrs["measured_in"] = context
        return optuna.trial.create_trial(values=[accuracy, latency], user_attrs=attrs)

    def rejected(context: str) -> FrozenTrial:
        attrs = {"rejected": "9 ms latency > limit 2 ms", "measured_in": context}
        return optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs=attrs)

    older = [trial("resnet20", 0.5, 1.5, None), trial("resnet20-selfattn", 0.45, 1.4, "batch1")]
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trials([*older, rejected("batch4")])  # no trained trial in batch 4 yet
    trials = study.get_trials()
    assert comparable_contexts(trials) == {"batch1", None}
    assert [t.number for t in pareto_front(trials, ("latency",))] == [0, 1]
    study.add_trials([
        trial("resnet20-cbam", 0.4, 4.6, "batch4"),
        trial("resnet20-mhsa", 0.3, 5.0, "batch4"),
    ])  # fmt: skip
    trials = study.get_trials()
    assert comparable_contexts(trials) == {"batch4"}
    assert [t.number for t in pareto_front(trials, ("latency",))] == [3]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert [t.number for t in pareto_front(complete, ("latency",))] == [3]  # as winners read
    assert [t.number for t in pareto_front(trials, ("params",))] == [0]  # counts compare
    # resnet20, trained again in batch 4, stands on the latency front by that trial, with
    # the mean accuracy of both its evaluations; against params it is still trial 0
    study.add_trials([trial("resnet20", 0.7, 4.0, "batch4")])
    trials = study.get_trials()
    front = pareto_front(trials, ("latency",))
    assert [t.number for t in front] == [5]
    assert mean_accuracies(trials)[0] == pytest.approx(0.6)
    runs = candidate_runs(trials)  # what the tables read: trial 5 shows the mean of both
    assert [t.number for t in runs[5]] == [0, 5] and mean_accuracy(runs[5]) == pytest.approx(0.6)
    assert _proxy_cell(front[0], runs) == "0.6000<br><small>mean of 2</small>"
    assert [t.number for t in pareto_front(trials, ("params",))] == [0]


def test_a_guided_trial_that_draws_a_start_up_candidate_again_is_no_find() -> None:
    """TPE drew trial 10's candidate again as trial 12, which scored higher by chance: the
    candidate counts once, by its mean, in the start-up group that first drew it."""
    trials = made_up_study().trials
    again = _trial(12, "complete", 0.70, 700)
    again.params = dict(trials[10].params)  # the same candidate as trial 10 (0.62)
    trials[12] = again
    c = startup_comparison(trials, "params", 1000)
    assert (c.startup.trained, c.guided.trained) == (10, 3)
    assert (c.startup.best_trial, c.startup.best_accuracy) == (10, pytest.approx(0.66))
    assert (c.guided.best_trial, c.guided.best_accuracy) == (11, 0.66)
    assert c.gain == pytest.approx(0.0, abs=1e-12)
    assert c.verdict.startswith("the guided trials found nothing better")
    stopped = _trial(12, "stopped", 0.30, 700)  # a repeat stopped early is the start-up's too
    stopped.params = dict(trials[10].params)
    stopped.user_attrs["arch"] = trials[10].user_attrs["arch"]
    trials[12] = stopped
    c = startup_comparison(trials, "params", 1000)
    assert (c.startup.trained, c.guided.trained) == (10, 3)
