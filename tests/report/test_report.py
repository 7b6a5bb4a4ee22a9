"""The report: every registered figure, the Pareto highlight, proxy fidelity, the HTML page
and the dashboard graphs, on a synthetic study (no training)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState, create_trial
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects, list_graph_object_ids
from plotly.offline import get_plotlyjs
from scipy.stats import kendalltau

from nas.models.attention import ATTENTION
from nas.presets import PRESETS, preset
from nas.report import (
    FIGURE_ORDER,
    FIGURES,
    accuracy_importances,
    attach_to_dashboard,
    build_figures,
    figure_order,
    graph_id,
    importance_figure,
    pareto_figure,
    proxy_fidelity,
    proxy_vs_full_figure,
    rejection_rate_figure,
    write_report,
)
from nas.report.figures import (
    BAR_PX,
    MIN_BAR_FIGURE_PX,
    MIN_IMPORTANCE_TRIALS,
    RELIABLE_IMPORTANCE_TRIALS,
    TITLE_WIDTH,
    fit_height,
    integer_axis,
    plain_title,
)
from nas.report.html import DASHBOARD_GRAPH_HEIGHT

TITLES = {
    "pareto-params": "Pareto front: accuracy vs params",
    "pareto-flops": "Pareto front: accuracy vs FLOPs",
    "pareto-latency": "Pareto front: accuracy vs latency",
    "pareto-memory": "Pareto front: accuracy vs peak memory",
    "history": "Optimization history",
    "accuracy-by-attention": "Accuracy by attention type",
    "accuracy-by-placement": "Accuracy by placement",
    "importances": "Hyperparameter importances",
    "proxy-vs-full": "Proxy vs full accuracy",
    "rejection-rate": "Rejection rate over time",
    "learning-curves": "Learning curves",
}

#: Figures a study shows only when it measured the metric (these studies did not).
HARDWARE_FIGURES = {"pareto-latency", "pareto-memory"}
#: The figures of the report of a study of accuracy and params, by name.
SHOWN = {name: title for name, title in TITLES.items() if name not in HARDWARE_FIGURES}

DISTRIBUTIONS: dict[str, BaseDistribution] = {
    "attention": CategoricalDistribution(ATTENTION.names()),
    "stem_width": IntDistribution(8, 64),
    "dropout": FloatDistribution(0.0, 0.5),
}

# (kind, preset, accuracy, params, flops, full_accuracy); numbers are the trial numbers.
TRIALS: list[tuple[Any, ...]] = [
    ("complete", "resnet20", 0.62, 269_722, 41_000_000, None),  # 0: front (params)
    ("rejected", "attention92", None, 15_117_482, None, None),  # 1
    ("complete", "resnet20-cbam", 0.66, 270_813, 43_000_000, 0.92),  # 2: front
    ("complete", "resnet20-selfattn", 0.60, 276_585, 40_000_000, None),  # 3: dominated
    ("rejected", "attention56", None, 8_257_962, None, None),  # 4
    ("complete", "enhanced-efficient-resnet", 0.74, 4_905_487, 540_000_000, 0.95),  # 5: front
    ("stopped", "resnet20-mhsa", 0.41, 291_677, 45_000_000, None),  # 6
    ("failed", "resnet20-mhsa", None, 291_677, 45_000_000, None),  # 7
    ("rejected", "resnet18-hierarchical", None, 11_339_983, None, None),  # 8
    ("complete", "resnet20-mhsa", 0.69, 291_677, 45_000_000, 0.91),  # 9: front
    ("unbuildable", None, None, None, None, None),  # 10: rejected, no params
    ("complete", "resnet20-cbam", 0.64, 270_813, 43_000_000, None),  # 11: dominated
]
DISTS_B = CategoricalDistribution(["x", "y"])
PARETO_PARAMS = {0, 2, 5, 9}
FULL = {2, 5, 9}
#: Four more trained trials (dominated ones), for the figures that need 10.
MORE_TRAINED: list[tuple[Any, ...]] = [
    ("complete", "resnet20", 0.55 + 0.01 * i, 269_722, 41_000_000, None) for i in range(4)
]


def _params(arch: dict[str, Any]) -> dict[str, Any]:
    return {
        "attention": arch["attention"]["type"],
        "stem_width": arch["stem_width"],
        "dropout": arch["dropout"],
    }


def _add(study: optuna.Study, row: tuple[Any, ...]) -> None:
    kind, name, acc, params, flops, full = row
    attrs: dict[str, Any] = {}
    trial_params: dict[str, Any] = {}
    if name is not None:
        arch = preset(name).to_dict()
        if kind == "complete" and len(study.trials) == 11:
            arch["dropout"] = 0.2  # a different point with the same size
        attrs |= {"arch": arch, "params": params, "preset": name}
        trial_params = _params(arch)
    if flops is not None:
        attrs["flops"] = flops
    if acc is not None:
        curve = [round(acc - 0.2, 4), round(acc - 0.05, 4), acc]
        attrs |= {"accuracy": acc, "curve": curve[:2] if kind == "stopped" else curve}
        attrs |= {"seconds": 12.5, "device": "cpu"}
    if full is not None:
        attrs |= {
            "full_val_accuracy": round(full - 0.01, 4),  # the same ranking as the test split
            "full_accuracy": full,
            "full_epochs": 200,
            "full_curve": [round(full - 0.3 + 0.0015 * i, 4) for i in range(200)],
            "checkpoint": "runs/<best>.pt",
        }
    state = TrialState.COMPLETE
    values: list[float] | None = None
    if kind == "complete":
        values = [acc, float(params)]
    elif kind == "rejected":
        state = TrialState.PRUNED
        attrs["rejected"] = f"{params / 1e6:.2f}M params > limit 5.00M"
    elif kind == "unbuildable":
        state = TrialState.PRUNED
        attrs["rejected"] = "cannot build: stage 2 narrows 64 -> 32 channels"
    elif kind == "stopped":
        state = TrialState.PRUNED
        attrs["stopped_early"] = "below the top third at epoch 2"
    else:
        state = TrialState.FAIL
        attrs["fail_reason"] = "loss is NaN at epoch 1"
    study.add_trial(
        create_trial(
            state=state,
            values=values,
            params=trial_params,
            distributions={k: DISTRIBUTIONS[k] for k in trial_params},
            user_attrs=attrs,
        )
    )


def make_study(tmp_path: Path, name: str = "report-test", rows: Any = TRIALS) -> optuna.Study:
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        storage=f"sqlite:///{tmp_path}/r.db",
        study_name=name,
    )
    study.set_metric_names(["val_accuracy", "params"])
    for row in rows:
        _add(study, row)
    return study


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    """The synthetic study, shared by the tests that only read it."""
    return make_study(tmp_path_factory.mktemp("study"))


def _trace(fig: Any, name: str) -> Any:
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, [t.name for t in fig.data]
    return found[0]


def test_synthetic_study_covers_the_presets() -> None:
    used = {row[1] for row in TRIALS if row[1] is not None}
    assert used == set(PRESETS.names())


def test_registry_has_every_figure() -> None:
    assert list(FIGURES) == list(TITLES)


@pytest.mark.parametrize("name", list(TITLES))
def test_figure_builds_with_its_title(study: optuna.Study, name: str) -> None:
    fig = FIGURES[name](study)
    assert fig.layout.title.text.startswith(TITLES[name])
    assert fig.to_json()


@pytest.mark.parametrize("name", list(TITLES))
def test_figure_builds_for_an_empty_study(tmp_path: Path, name: str) -> None:
    fig = FIGURES[name](make_study(tmp_path, rows=[]))
    assert fig.layout.title.text.startswith(TITLES[name])


def test_pareto_front_highlights_exactly_the_non_dominated(study: optuna.Study) -> None:
    fig = FIGURES["pareto-params"](study)
    front = _trace(fig, "Pareto front")
    assert set(front.customdata) == PARETO_PARAMS
    assert front.line.shape == "hv"
    assert list(front.x) == sorted(front.x)  # a step line from small to large
    assert fig.layout.xaxis.type == "log"
    trained = _trace(fig, "trained")
    assert set(trained.customdata) == {0, 2, 3, 5, 9, 11}
    assert set(_trace(fig, "stopped early").customdata) == {6}


def test_pareto_front_by_flops(study: optuna.Study) -> None:
    done = [r for r in TRIALS if r[0] == "complete"]
    number = {id(r): i for i, r in enumerate(TRIALS)}
    expected = {
        number[id(r)]
        for r in done
        if not any(o[2] >= r[2] and o[4] <= r[4] and (o[2] > r[2] or o[4] < r[4]) for o in done)
    }
    fig = FIGURES["pareto-flops"](study)
    assert set(_trace(fig, "Pareto front").customdata) == expected == {3, 0, 2, 9, 5}
    assert "FLOPs" in fig.layout.title.text


def test_rejected_candidates_get_their_own_trace(study: optuna.Study) -> None:
    fig = FIGURES["pareto-params"](study)
    rejected = _trace(fig, "rejected (over the limit)")
    assert set(rejected.customdata) == {1, 4, 8}  # 10 has no params to place it
    assert list(rejected.x) == [15_117_482, 8_257_962, 11_339_983]
    for trace in fig.data:
        if trace.name != "rejected (over the limit)":
            assert not {1, 4, 8} & set(trace.customdata)
    assert "trial 1" in rejected.hovertext[0] and "&gt; limit" in rejected.hovertext[0]


def test_pareto_figure_refuses_an_unknown_second_objective(study: optuna.Study) -> None:
    with pytest.raises(ValueError, match="params, flops, latency, memory"):
        pareto_figure(study.trials, "speed")


def test_proxy_vs_full_title_has_scipys_tau(study: optuna.Study) -> None:
    proxy = [r[2] for r in TRIALS if r[5] is not None]
    full = [r[5] for r in TRIALS if r[5] is not None]
    tau = kendalltau(proxy, full).statistic
    fig = proxy_vs_full_figure(study)
    match = re.fullmatch(
        r"Proxy vs full accuracy Kendall's tau (-?\d\.\d\d)( \[90%: -?\d\.\d\d, -?\d\.\d\d\])?, "
        r"n=3 \(fewer than 5 winners: it means little\)",
        plain_title(fig, detail=True),
    )
    assert match, fig.layout.title.text
    assert plain_title(fig) == "Proxy vs full accuracy"
    # wrapped for optuna-dashboard's half-width panel: no line wider than TITLE_WIDTH
    lines = re.sub(r"<[^>]+>", "\n", fig.layout.title.text.replace("<br>", "\n")).splitlines()
    assert max(map(len, lines)) <= TITLE_WIDTH
    assert float(match.group(1)) == pytest.approx(round(tau, 2))
    assert set(fig.data[0].customdata) == FULL
    fidelity = proxy_fidelity(study.trials)
    assert fidelity["n"] == 3 and fidelity["trials"] == [2, 5, 9]
    assert fidelity["tau"] == pytest.approx(tau) == pytest.approx(1 / 3)
    json.dumps(fidelity)  # a study user attribute must be plain JSON


def test_proxy_fidelity_needs_two_winners(tmp_path: Path) -> None:
    study = make_study(tmp_path, rows=TRIALS[:3])  # one fully trained winner
    assert proxy_fidelity(study.trials) == {
        "tau": None,
        "n": 1,
        "trials": [2],
        "tau_low": None,
        "tau_high": None,
    }
    title = plain_title(proxy_vs_full_figure(study), detail=True)
    assert title.startswith("Proxy vs full accuracy not enough fully trained winners")


def test_importances_are_computed_on_the_proxy_accuracy(tmp_path: Path) -> None:
    fig = importance_figure(make_study(tmp_path, rows=TRIALS + MORE_TRAINED))
    assert len(fig.data) == 1
    bar = fig.data[0]
    assert set(bar.y) <= set(DISTRIBUTIONS)
    assert sum(bar.x) == pytest.approx(1.0)
    # 10 trained trials: shown, with the caveat in the title
    assert "a rough guide: only 10 trained trials (fewer than 30)" in plain_title(fig, True)


def test_importances_point_at_what_makes_accuracy_high() -> None:
    # High accuracy needs cbam; among the low ones, "b" decides how low. Ranking by low
    # accuracy (PED-ANOVA minimises) would point at "b" instead.
    study = optuna.create_study(directions=["maximize", "minimize"])
    dists: dict[str, BaseDistribution] = {
        "attention": CategoricalDistribution(["cbam", "se", "none"]),
        "b": DISTS_B,
    }
    for i in range(24):
        attention, b = ["cbam", "se", "none"][i % 3], ["x", "y"][i % 2]
        acc = 0.9 + 0.001 * i if attention == "cbam" else (0.2 if b == "x" else 0.4)
        study.add_trial(
            create_trial(
                values=[acc, 1e5],
                params={"attention": attention, "b": b},
                distributions=dists,
                user_attrs={"accuracy": acc},
            )
        )
    importances = accuracy_importances(study)
    assert importances["attention"] > 0.8 > importances["b"]


@pytest.mark.parametrize("rows", [3, len(TRIALS)])
def test_importances_with_too_few_trials_say_why(tmp_path: Path, rows: int) -> None:
    study = make_study(tmp_path, rows=TRIALS[:rows])
    fig = importance_figure(study)
    assert not fig.data
    n = len(study.get_trials(states=(TrialState.COMPLETE,)))
    note = " ".join(a.text for a in fig.layout.annotations)
    assert f"needs at least {MIN_IMPORTANCE_TRIALS} trained trials with an accuracy; the " in note
    assert f"study has {n}. With fewer, the few best trials" in note
    assert MIN_IMPORTANCE_TRIALS == 10 and n < MIN_IMPORTANCE_TRIALS


def test_importances_with_enough_trials_carry_no_caveat() -> None:
    fig = importance_figure(_many_params_study(3, trials=RELIABLE_IMPORTANCE_TRIALS))
    assert fig.data and plain_title(fig, detail=True) == "Hyperparameter importances"
    fig = importance_figure(_many_params_study(3, trials=RELIABLE_IMPORTANCE_TRIALS - 1))
    assert "fewer than 30" in plain_title(fig, detail=True)


def test_rejection_rate_is_rolling_and_cumulative(study: optuna.Study) -> None:
    fig = rejection_rate_figure(study.trials, window=4)
    rolling, cumulative = fig.data
    assert list(rolling.x) == list(range(12))
    # rejected: 1, 4, 8, 10 (trial 7 failed, which is sampled but not rejected)
    assert rolling.y[3] == pytest.approx(1 / 4)
    assert rolling.y[11] == pytest.approx(2 / 4)  # trials 8..11
    assert cumulative.y[-1] == pytest.approx(4 / 12)
    assert rolling.y[0] == 0 and rolling.y[1] == pytest.approx(1 / 2)


def test_learning_curves_dash_the_stopped_trials(study: optuna.Study) -> None:
    fig = FIGURES["learning-curves"](study)
    by_trial = {t.customdata[0]: t for t in fig.data}
    assert set(by_trial) == {0, 2, 3, 5, 6, 9, 11}
    assert by_trial[6].line.dash == "dash" and by_trial[0].line.dash is None
    assert list(by_trial[6].y) == [0.21, 0.36]


def test_learning_curves_tell_the_trials_apart(study: optuna.Study) -> None:
    fig = FIGURES["learning-curves"](study)
    by_trial = {t.customdata[0]: t for t in fig.data}
    # a colour and a legend entry per trial, named after it
    assert len({t.line.color for t in fig.data}) == len(fig.data) == 7
    assert fig.layout.showlegend and all(t.showlegend is not False for t in fig.data)
    assert by_trial[3].name == "trial 3"
    assert by_trial[2].name == "trial 2 (front)" and by_trial[2].line.width > by_trial[3].line.width
    assert by_trial[6].name == "trial 6 (stopped early)"  # no stopped_at_epoch recorded
    assert {n for n, t in by_trial.items() if "(front)" in t.name} == PARETO_PARAMS
    # the legend is a column right of the plot, clear of the rung labels above it
    assert fig.layout.legend.orientation == "v" and fig.layout.legend.x > 1


def test_groups_by_attention_type_and_placement(study: optuna.Study) -> None:
    fig = FIGURES["accuracy-by-attention"](study)
    groups = {t.x[0]: set(t.customdata) for t in fig.data}
    assert groups == {"none": {0}, "cbam": {2, 5, 11}, "self_attn": {3}, "mhsa": {9}}
    fig = FIGURES["accuracy-by-placement"](study)
    groups = {t.x[0]: set(t.customdata) for t in fig.data}
    assert groups == {"in_block": {5}, "after_stage": {2, 3, 9, 11}, "no attention": {0}}


class _TagChecker(HTMLParser):
    """Fails on unbalanced or mismatched tags."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _check_page(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    marker = get_plotlyjs()[:60]  # the library's banner: "/**\n* plotly.js v..."
    assert "plotly.js v" in marker
    assert text.count(marker) == 1


def test_write_report(study: optuna.Study, tmp_path: Path) -> None:
    path = write_report(study, tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html"
    text = path.read_text(encoding="utf-8")
    _check_page(text)
    for title in SHOWN.values():
        assert title in text
    for name in FIGURES:
        assert (f'id="{graph_id(name)}"' in text) == (name in SHOWN)
    rows = set(map(int, re.findall(r'<tr id="winner-(\d+)"', text)))
    assert rows == PARETO_PARAMS | FULL
    assert "report-test" in text and "accuracy (maximize), params (minimize)" in text
    assert "val_accuracy (maximize)" not in text  # named as every command names it
    assert (
        "33.3% of 12 sampled candidates (the first and last thirds are compared from 15 on)" in text
    )
    assert "trained 7 (complete 6, stopped early 1), rejected 4, failed 1" in text
    assert "Kendall&#x27;s tau 0.33" in text
    assert "n=3 (fewer than 5 winners: it means little) (trials 2, 5, 9)" in text
    assert "trial 5: proxy accuracy 0.7400" in text
    assert "<details>" in text and "&quot;stem_width&quot;: 31" in text
    assert "runs/&lt;best&gt;.pt" in text and "runs/<best>.pt" not in text  # escaped


def test_write_report_for_an_empty_study(tmp_path: Path) -> None:
    study = make_study(tmp_path, name="empty <study>", rows=[])
    text = write_report(study, tmp_path / "empty.html").read_text(encoding="utf-8")
    _check_page(text)
    assert "empty &lt;study&gt;" in text and "empty <study>" not in text
    assert "no trained trials yet" in text
    assert "No winners yet" in text
    for title in SHOWN.values():
        assert title in text


def test_write_report_single_objective(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    study.set_metric_names(["val_accuracy"])
    for row in TRIALS[:6]:
        kind, name, acc, params, flops, _ = row
        arch = preset(name).to_dict()
        attrs: dict[str, Any] = {"arch": arch, "params": params, "flops": flops}
        if kind == "complete":
            study.add_trial(create_trial(value=acc, user_attrs={**attrs, "accuracy": acc}))
        else:
            attrs["rejected"] = "over the limit"
            study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs=attrs))
    text = write_report(study, tmp_path / "single.html").read_text(encoding="utf-8")
    _check_page(text)
    assert "accuracy (maximize)" in text
    assert set(map(int, re.findall(r'<tr id="winner-(\d+)"', text))) == {0, 2, 5}


def _graphs(storage: str, name: str) -> dict[str, Any]:
    study = optuna.load_study(study_name=name, storage=storage)
    return study._storage.get_study_system_attrs(study._study_id)


def test_attach_to_dashboard_overwrites(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    storage = f"sqlite:///{tmp_path}/r.db"
    ids = attach_to_dashboard(study)
    assert ids == [graph_id(name) for name in FIGURES if name in SHOWN]
    attrs = _graphs(storage, study.study_name)
    assert sorted(list_graph_object_ids(attrs)) == sorted(ids)
    graphs = get_plotly_graph_objects(attrs)
    for name, title in SHOWN.items():
        assert json.loads(graphs[graph_id(name)])["layout"]["title"]["text"].startswith(title)
    keys = set(attrs)
    assert attach_to_dashboard(study) == ids
    again = _graphs(storage, study.study_name)
    assert sorted(list_graph_object_ids(again)) == sorted(ids)
    assert set(again) == keys


def test_build_figures_follow_the_documented_order(study: optuna.Study) -> None:
    assert FIGURE_ORDER[:2] == ("pareto-params", "pareto-flops")
    # a new figure must be given a place; the fronts of later metrics are placed by the registry
    assert set(FIGURES) - set(FIGURE_ORDER) == {"pareto-latency", "pareto-memory"}
    assert [name for name, _ in build_figures(study)] == [n for n in FIGURE_ORDER if n in SHOWN]


def test_figure_order_puts_the_pareto_fronts_first() -> None:
    shuffled = ["learning-curves", "mine", "importances", "pareto-flops", "pareto-params"]
    assert figure_order(shuffled) == [
        "pareto-params",
        "pareto-flops",
        "importances",
        "learning-curves",
        "mine",  # not in FIGURE_ORDER: after the known ones
    ]


def test_report_shows_the_figures_in_order(study: optuna.Study, tmp_path: Path) -> None:
    text = write_report(study, tmp_path / "report.html").read_text(encoding="utf-8")
    places = [text.index(f'<div id="{graph_id(name)}"') for name in FIGURE_ORDER]
    assert places == sorted(places)


def _many_params_study(params: int = 29, trials: int = 12) -> optuna.Study:
    """A study whose trained trials sampled ``params`` float parameters."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    dists: dict[str, BaseDistribution] = {
        f"parameter_{i:02d}": FloatDistribution(0.0, 1.0) for i in range(params)
    }
    for t in range(trials):
        values = {name: ((t * 7 + i * 3) % 11) / 10 for i, name in enumerate(dists)}
        acc = 0.5 + 0.04 * values["parameter_00"] + 0.001 * t
        study.add_trial(
            create_trial(
                values=[acc, 1e5],
                params=values,
                distributions=dists,
                user_attrs={"accuracy": acc},
            )
        )
    return study


def test_importances_label_every_bar() -> None:
    fig = importance_figure(_many_params_study(29))
    (bar,) = fig.data
    assert len(bar.y) == 29
    axis = fig.layout.yaxis
    # plotly labels only every other bar of a crowded category axis unless told otherwise
    assert axis.type == "category" and axis.tickmode == "linear" and axis.dtick == 1
    assert list(axis.categoryarray) == list(bar.y)
    assert fig.layout.height >= 29 * BAR_PX  # room for a label per bar
    assert importance_figure(_many_params_study(3)).layout.height == MIN_BAR_FIGURE_PX


def test_importances_fit_the_dashboards_graph_box() -> None:
    fig = fit_height(importance_figure(_many_params_study(29)), DASHBOARD_GRAPH_HEIGHT)
    assert fig.layout.height == DASHBOARD_GRAPH_HEIGHT
    assert fig.layout.yaxis.dtick == 1  # still every label, in a smaller font
    assert 6 <= fig.layout.yaxis.tickfont.size < 12
    small = importance_figure(_many_params_study(3))
    assert fit_height(small, 1000).layout.height == MIN_BAR_FIGURE_PX  # short enough already


def test_attached_importances_fit_the_dashboards_graph_box(tmp_path: Path) -> None:
    study = make_study(tmp_path, rows=TRIALS + MORE_TRAINED)
    attach_to_dashboard(study)
    graphs = get_plotly_graph_objects(_graphs(f"sqlite:///{tmp_path}/r.db", study.study_name))
    layout = json.loads(graphs[graph_id("importances")])["layout"]
    assert layout["height"] <= DASHBOARD_GRAPH_HEIGHT
    assert layout["yaxis"]["dtick"] == 1


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (None, 1),
        (0, 1),
        (2, 1),
        (12, 1),
        (13, 2),
        (24, 2),
        (25, 5),
        (60, 5),
        (61, 10),
        (1000, 100),
        (1300, 200),
    ],
)
def test_integer_axis_steps_are_whole(span: int | None, step: int) -> None:
    axis = integer_axis([] if span is None else [0, span])
    assert axis == {"tickmode": "linear", "tick0": 0, "dtick": step, "tickformat": "d"}


@pytest.mark.parametrize("name", ["history", "rejection-rate"])
@pytest.mark.parametrize("rows", [3, len(TRIALS)])
def test_trial_number_axes_have_no_fractional_ticks(tmp_path: Path, name: str, rows: int) -> None:
    # over trials 0..2 plotly would tick at 0, 0.5, 1, ...
    fig = FIGURES[name](make_study(tmp_path, rows=TRIALS[:rows]))
    axis = fig.layout.xaxis
    assert axis.title.text == "trial number"
    assert axis.tickformat == "d" and axis.tickmode == "linear"
    assert isinstance(axis.dtick, int) and axis.dtick >= 1 and axis.tick0 == 0


def test_epoch_axis_has_no_fractional_ticks(study: optuna.Study) -> None:
    axis = FIGURES["learning-curves"](study).layout.xaxis
    assert (axis.tickformat, axis.tickmode, axis.dtick) == ("d", "linear", 1)


def test_proxy_vs_full_without_winners_says_so(tmp_path: Path) -> None:
    rows = [r for r in TRIALS if r[5] is None]  # nothing fully trained
    fig = proxy_vs_full_figure(make_study(tmp_path, rows=rows))
    assert [a.text for a in fig.layout.annotations] == [
        "no fully trained winners yet: run nas train-winners"
    ]
    # not plotly's default for an axis without data: -1 to 6, i.e. -100% to 600%
    assert tuple(fig.layout.xaxis.range) == (0, 1) == tuple(fig.layout.yaxis.range)
    assert fig.layout.xaxis.tickformat == ".0%" == fig.layout.yaxis.tickformat


def test_proxy_vs_full_pads_its_axes(study: optuna.Study) -> None:
    fig = proxy_vs_full_figure(study)
    assert not fig.layout.annotations
    (points,) = fig.data
    for axis, values in ((fig.layout.xaxis, points.x), (fig.layout.yaxis, points.y)):
        low, high = axis.range
        span = max(values) - min(values)
        # no point on the plot's edge: a tenth of the span (or a point) of room each side
        assert low <= min(values) - max(0.1 * span, 0.01)
        assert high >= max(values) + max(0.1 * span, 0.01)
        assert high - low < 2 * span + 0.1  # and not zoomed out to nothing


@pytest.mark.parametrize("name", list(TITLES))
def test_empty_figures_have_no_default_ranges(tmp_path: Path, name: str) -> None:
    fig = FIGURES[name](make_study(tmp_path, rows=[]))
    assert fig.layout.annotations  # says why it is empty
    layout = fig.to_plotly_json()["layout"]
    for key in ("yaxis", "xaxis"):
        axis = layout.get(key, {})
        share = axis.get("tickformat", "").endswith("%") or (key, name) == ("xaxis", "importances")
        if share:
            low, high = axis["range"]  # an accuracy axis: within 0-100%
            assert 0 <= low < high <= 1.05


def test_zero_cost_scores_are_ranked_against_proxy_accuracy() -> None:
    from nas.report.html import zero_cost_text

    trials = [
        create_trial(
            values=[acc, 1.0],
            user_attrs={"accuracy": acc, "zero_cost": {"params": acc * 10, "synflow": -acc}},
        )
        for acc in (0.2, 0.4, 0.3, 0.5)
    ]
    text = zero_cost_text(trials)
    assert text == (
        "Kendall's tau over 4 trials: params +1.00, synflow -1.00 (over 4 trials a tau moves by "
        "about ±0.50: a hint, not a ranking)"
    )
    assert zero_cost_text(trials[:2]).startswith("needs 3 trained trials")
