"""The figures of a study, one function each, and the registry the report pages share.

Every builder in :data:`FIGURES` takes an :class:`optuna.Study` and returns a
:class:`plotly.graph_objects.Figure` with a fixed title prefix, so the HTML report
(:func:`nas.report.write_report`) and optuna-dashboard (:func:`nas.report.attach_to_dashboard`)
show the same list, in the same order (:data:`FIGURE_ORDER`: the Pareto fronts first). A
builder never raises for a study that is empty or lacks optional user attributes: it draws
what there is and says in an annotation what is missing.

Axes that count (trial numbers, epochs) only have ticks on whole numbers
(:func:`integer_axis`), and an empty figure's accuracy axes span 0-100% rather than plotly's
default -100% to 600%.

Trial categories come from :mod:`nas.search.stats`: trained (COMPLETE), stopped early
(PRUNED with ``stopped_early``), rejected before training (``rejected``) and failed.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.subplots import make_subplots

from nas.config import PLACEMENTS, ArchConfig
from nas.errors import NasError
from nas.registry import Registry
from nas.search.stats import (
    accuracy_of,
    fidelity_text,
    full_val_accuracy,
    is_rejected,
    is_stopped,
    pareto_front,
    proxy_fidelity,
    sampled_trials,
)
from nas.units import human

#: A figure builder: a study in, a titled figure out.
FigureBuilder = Callable[[optuna.Study], go.Figure]

#: Figure builders by name. A name also gives the figure's HTML id and its optuna-dashboard
#: graph object id (:func:`graph_id`). They are shown in :data:`FIGURE_ORDER`.
FIGURES: Registry[FigureBuilder] = Registry("figure")

#: The order in which the report and optuna-dashboard show the figures: the Pareto fronts
#: (what a search is for) first, then how the search went (history), what drives accuracy
#: (attention type, placement, parameter importances), whether the proxy ranks like full
#: training, the rejected candidates and last the per-epoch learning curves. A registered
#: figure missing here comes after these, in registration order.
FIGURE_ORDER: tuple[str, ...] = (
    "pareto-params",
    "pareto-flops",
    "history",
    "accuracy-by-attention",
    "accuracy-by-placement",
    "importances",
    "proxy-vs-full",
    "rejection-rate",
    "learning-curves",
)

#: Trials per window of the rolling rejection share.
ROLLING_WINDOW = 10
#: Fewest trained trials with an accuracy for which parameter importances are computed.
MIN_IMPORTANCE_TRIALS = 3
#: Fewest trials PED-ANOVA's top quantile should hold (see :func:`accuracy_importances`).
IMPORTANCE_TOP_TRIALS = 5
#: Most ticks :func:`integer_axis` puts on a trial-number axis.
MAX_TICKS = 12
#: Pixels per bar of the importance figure, and its height apart from the bars (title, axis).
BAR_PX = 22
BAR_FIGURE_EXTRA_PX = 170
#: Smallest height of a figure sized to its bars (:func:`importance_figure`).
MIN_BAR_FIGURE_PX = 450

_SECOND_LABEL = {"params": "params", "flops": "FLOPs"}
_TRAINED_COLOR = "#1f77b4"
_FRONT_COLOR = "#d62728"
_STOPPED_COLOR = "#ff7f0e"
_REJECTED_COLOR = "#7f7f7f"
_NO_ATTENTION = "no attention"


def graph_id(name: str) -> str:
    """Stable HTML id (and dashboard graph object id) of registered figure ``name``."""
    return f"nas-{name}"


def figure_order(names: Iterable[str]) -> list[str]:
    """``names`` in :data:`FIGURE_ORDER`; names not in it follow in their given order."""
    rank = {name: i for i, name in enumerate(FIGURE_ORDER)}
    given = list(names)
    return sorted(given, key=lambda name: (rank.get(name, len(rank)), given.index(name)))


def build_figures(study: optuna.Study) -> list[tuple[str, go.Figure]]:
    """Every registered figure of ``study`` as (name, figure), in :data:`FIGURE_ORDER`."""
    return [(name, FIGURES[name](study)) for name in figure_order(FIGURES.names())]


def integer_axis(values: Iterable[int], most: int = MAX_TICKS) -> dict[str, Any]:
    """Axis settings for whole numbers (trial numbers, epochs): ticks on integers only.

    Plotly's automatic ticks put a trial number axis over a few trials at 0, 0.5, 1, ...; here
    the step is 1, 2 or 5 times a power of ten, the smallest that keeps at most ``most`` ticks
    over the span of ``values``, and stays so when zooming in. Pass the result to
    ``update_xaxes``.
    """
    numbers = list(values)
    span = max(numbers) - min(numbers) if numbers else 0
    step, scale = 1, 1
    while span / step > most:
        for factor in (2, 5, 10):
            step = factor * scale
            if span / step <= most:
                break
        scale *= 10
    return {"tickmode": "linear", "tick0": 0, "dtick": step, "tickformat": "d"}


def bar_figure_height(bars: int) -> int:
    """Height in pixels of a horizontal bar figure that gives each of ``bars`` labels a line."""
    return max(MIN_BAR_FIGURE_PX, BAR_FIGURE_EXTRA_PX + BAR_PX * bars)


def fit_height(fig: go.Figure, height: int) -> go.Figure:
    """Make ``fig`` at most ``height`` pixels tall, in place, and return it.

    For optuna-dashboard, which draws every graph in a box of fixed height: a taller figure
    would spill over the next one. A horizontal bar figure keeps a label on every bar (its
    axis has ``dtick=1``); the label font shrinks so that they still fit.
    """
    if fig.layout.height is None or fig.layout.height <= height:
        return fig
    bars = max((len(t.y) for t in fig.data if t.type == "bar" and t.orientation == "h"), default=0)
    fig.update_layout(height=height)
    if bars:
        margin = fig.layout.margin
        plot = height - (margin.t if margin.t is not None else 100) - (margin.b or 80)
        fig.update_yaxes(tickfont={"size": max(6, min(12, int(0.85 * plot / bars)))})
    return fig


# --------------------------------------------------------------------------- helpers
def _trials(study: optuna.Study) -> list[FrozenTrial]:
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def _complete(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """COMPLETE trials with a proxy accuracy."""
    return [t for t in trials if t.state == TrialState.COMPLETE and accuracy_of(t) is not None]


def _stopped(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Early-stopped trials with a last proxy accuracy."""
    return [t for t in trials if is_stopped(t) and accuracy_of(t) is not None]


def arch_of(trial: FrozenTrial) -> ArchConfig | None:
    """The trial's architecture, or None when it has none (or an unreadable one)."""
    data = trial.user_attrs.get("arch")
    if not isinstance(data, dict):
        return None
    try:
        return ArchConfig.from_dict(data)
    except NasError:
        return None


def arch_summary(trial: FrozenTrial) -> str:
    """One-line architecture description of ``trial`` (``ArchConfig.summary``)."""
    arch = arch_of(trial)
    return arch.summary() if arch is not None else "(no architecture recorded)"


def _acc_text(value: object) -> str:
    """A stored accuracy as four decimals, or '-' when there is none."""
    return f"{float(value):.4f}" if isinstance(value, int | float) else "-"


def _hover(trial: FrozenTrial, *lines: str) -> str:
    """Hover text: trial number, architecture summary, then ``lines`` (escaped for plotly)."""
    head = f"<b>trial {trial.number}</b>"
    preset = trial.user_attrs.get("preset")
    if preset:
        head += f" (preset {html.escape(str(preset))})"
    body = [html.escape(arch_summary(trial)), *(html.escape(line) for line in lines)]
    return "<br>".join([head, *body])


def _count(trial: FrozenTrial, key: str) -> int | None:
    value = trial.user_attrs.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _size_line(trial: FrozenTrial) -> str:
    parts = []
    for key, label in _SECOND_LABEL.items():
        n = _count(trial, key)
        if n is not None:
            parts.append(f"{human(n)} {label}")
    return ", ".join(parts)


def _titled(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(
        title={"text": title},
        xaxis_title=x,
        yaxis_title=y,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        margin={"t": 90},
    )
    return fig


def _empty_accuracy(fig: go.Figure, **where: Any) -> None:
    """Range an accuracy axis of an empty figure over 0-100% (plotly's default for an axis
    without data is -1 to 6, i.e. -100% to 600%)."""
    fig.update_yaxes(range=[0, 1], **where)


def _note(fig: go.Figure, text: str) -> None:
    """Add a centred message (why the figure is empty or partial)."""
    fig.add_annotation(
        text=html.escape(text),
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        font={"size": 14, "color": "#555"},
    )


# --------------------------------------------------------------------------- Pareto front
def pareto_figure(trials: Sequence[FrozenTrial], second: str = "params") -> go.Figure:
    """Proxy accuracy against ``second`` (``params`` or ``flops``), front highlighted.

    Trained trials are points; the non-dominated ones (:func:`nas.search.stats.pareto_front`)
    are highlighted and joined by a step line; early-stopped trials are drawn apart at their
    last accuracy; rejected candidates, which have no accuracy, sit in a strip below at their
    size. Every trace's ``customdata`` holds the trial numbers. The x axis is logarithmic.

    Raises:
        ValueError: for a ``second`` other than ``params`` or ``flops``.
    """
    if second not in _SECOND_LABEL:
        raise ValueError(f"second must be one of {', '.join(_SECOND_LABEL)}, got {second!r}")
    label = _SECOND_LABEL[second]
    trained = [t for t in _complete(trials) if _count(t, second) is not None]
    stopped = [t for t in _stopped(trials) if _count(t, second) is not None]
    rejected = [t for t in trials if is_rejected(t)]
    placed = [t for t in rejected if _count(t, second) is not None]
    front = sorted(pareto_front(trials, second), key=lambda t: _count(t, second) or 0)

    fig = make_subplots(
        rows=2 if placed else 1,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.85, 0.15] if placed else None,
        vertical_spacing=0.04,
    )

    def points(group: Sequence[FrozenTrial], **style: Any) -> go.Scatter:
        return go.Scatter(
            x=[_count(t, second) for t in group],
            y=[accuracy_of(t) for t in group],
            customdata=[t.number for t in group],
            hovertext=[_hover(t, f"accuracy {accuracy_of(t):.4f}", _size_line(t)) for t in group],
            hoverinfo="text",
            **style,
        )

    fig.add_trace(
        points(
            trained,
            name="trained",
            mode="markers",
            marker={"color": _TRAINED_COLOR, "size": 8, "opacity": 0.6},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        points(
            stopped,
            name="stopped early",
            mode="markers",
            marker={"color": _STOPPED_COLOR, "size": 8, "symbol": "circle-open"},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        points(
            front,
            name="Pareto front",
            mode="lines+markers",
            line={"shape": "hv", "color": _FRONT_COLOR},
            marker={"color": _FRONT_COLOR, "size": 11, "line": {"width": 1, "color": "black"}},
        ),
        row=1,
        col=1,
    )
    if placed:
        fig.add_trace(
            go.Scatter(
                x=[_count(t, second) for t in placed],
                y=[0] * len(placed),
                customdata=[t.number for t in placed],
                hovertext=[_hover(t, str(t.user_attrs["rejected"]), _size_line(t)) for t in placed],
                hoverinfo="text",
                name="rejected (over the limit)",
                mode="markers",
                marker={"color": _REJECTED_COLOR, "symbol": "x", "size": 8},
            ),
            row=2,
            col=1,
        )
        fig.update_yaxes(showticklabels=False, title_text="rejected", row=2, col=1)
    fig.update_xaxes(type="log")
    fig.update_yaxes(title_text="proxy validation accuracy", tickformat=".0%", row=1, col=1)
    unplaced = len(rejected) - len(placed)
    x_title = label
    if unplaced:
        x_title += f" ({unplaced} rejected candidates without a {label} count not shown)"
    fig.update_xaxes(title_text=x_title, row=2 if placed else 1, col=1)
    fig.update_layout(
        title={"text": f"Pareto front: accuracy vs {label}"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        margin={"t": 90},
    )
    if not trained and not stopped:
        _note(fig, "no trained trials yet")
        _empty_accuracy(fig, row=1, col=1)
    return fig


@FIGURES.register("pareto-params")
def pareto_params_figure(study: optuna.Study) -> go.Figure:
    """The "Pareto front: accuracy vs params" figure (see :func:`pareto_figure`)."""
    return pareto_figure(_trials(study), "params")


@FIGURES.register("pareto-flops")
def pareto_flops_figure(study: optuna.Study) -> go.Figure:
    """The "Pareto front: accuracy vs FLOPs" figure (see :func:`pareto_figure`)."""
    return pareto_figure(_trials(study), "flops")


# --------------------------------------------------------------------------- history
@FIGURES.register("history")
def history_figure(study: optuna.Study) -> go.Figure:
    """The "Optimization history" figure: every trained trial's accuracy and the best so far."""
    trials = _trials(study)
    complete, stopped = _complete(trials), _stopped(trials)
    best_x: list[int] = []
    best_y: list[float] = []
    best = -math.inf
    for t in complete:
        best = max(best, accuracy_of(t) or 0.0)
        best_x.append(t.number)
        best_y.append(best)
    fig = go.Figure()
    for group, name, marker in (
        (complete, "trained", {"color": _TRAINED_COLOR, "size": 8}),
        (stopped, "stopped early", {"color": _STOPPED_COLOR, "size": 8, "symbol": "circle-open"}),
    ):
        fig.add_trace(
            go.Scatter(
                x=[t.number for t in group],
                y=[accuracy_of(t) for t in group],
                customdata=[t.number for t in group],
                hovertext=[_hover(t, f"accuracy {accuracy_of(t):.4f}") for t in group],
                hoverinfo="text",
                mode="markers",
                name=name,
                marker=marker,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=best_x,
            y=best_y,
            mode="lines",
            line={"shape": "hv", "color": _FRONT_COLOR},
            name="best so far",
        )
    )
    fig.update_yaxes(tickformat=".0%")
    fig.update_xaxes(**integer_axis(t.number for t in (*complete, *stopped)))
    if not complete and not stopped:
        _note(fig, "no trained trials yet")
        _empty_accuracy(fig)
    return _titled(fig, "Optimization history", "trial number", "proxy validation accuracy")


# --------------------------------------------------------------------------- groups
def attention_type_of(trial: FrozenTrial) -> str | None:
    """The trial's attention type (``none`` for none), or None without an architecture."""
    arch = arch_of(trial)
    return arch.attention.type if arch is not None else None


def placement_of(trial: FrozenTrial) -> str | None:
    """The trial's attention placement; ``no attention`` when it has none."""
    arch = arch_of(trial)
    if arch is None:
        return None
    return _NO_ATTENTION if arch.attention.type == "none" else arch.attention.placement


def _attention_order() -> list[str]:
    from nas.models.attention import ATTENTION

    return ATTENTION.names()


def _placement_order() -> list[str]:
    return [*PLACEMENTS, _NO_ATTENTION]


def accuracy_by_figure(
    trials: Sequence[FrozenTrial],
    title: str,
    group: Callable[[FrozenTrial], str | None],
    order: Sequence[str],
    axis: str,
) -> go.Figure:
    """Box plot (with every point) of trained trials' proxy accuracy, grouped by ``group``.

    Groups come in ``order`` (then any other, sorted); empty groups are left out.
    """
    groups: dict[str, list[FrozenTrial]] = {}
    for t in _complete(trials):
        key = group(t)
        if key is not None:
            groups.setdefault(key, []).append(t)
    names = [k for k in order if k in groups] + sorted(set(groups) - set(order))
    fig = go.Figure()
    for name in names:
        members = groups[name]
        fig.add_trace(
            go.Box(
                x=[name] * len(members),
                y=[accuracy_of(t) for t in members],
                customdata=[t.number for t in members],
                hovertext=[_hover(t, f"accuracy {accuracy_of(t):.4f}") for t in members],
                hoverinfo="text",
                name=f"{name} (n={len(members)})",
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
            )
        )
    fig.update_xaxes(categoryorder="array", categoryarray=names)
    fig.update_yaxes(tickformat=".0%")
    fig.update_layout(showlegend=False)
    if not names:
        _note(fig, "no trained trials yet")
        _empty_accuracy(fig)
    return _titled(fig, title, axis, "proxy validation accuracy")


@FIGURES.register("accuracy-by-attention")
def attention_figure(study: optuna.Study) -> go.Figure:
    """The "Accuracy by attention type" figure: trained trials by attention type."""
    return accuracy_by_figure(
        _trials(study),
        "Accuracy by attention type",
        attention_type_of,
        _attention_order(),
        "attention type",
    )


@FIGURES.register("accuracy-by-placement")
def placement_figure(study: optuna.Study) -> go.Figure:
    """The "Accuracy by placement" figure: trained trials by placement."""
    return accuracy_by_figure(
        _trials(study), "Accuracy by placement", placement_of, _placement_order(), "placement"
    )


# --------------------------------------------------------------------------- importances
def _negated_accuracy(trial: FrozenTrial) -> float:
    """PED-ANOVA's target: lower is better, so the proxy accuracy negated (NaN without one)."""
    value = accuracy_of(trial)
    return -value if value is not None else math.nan


def accuracy_importances(study: optuna.Study) -> dict[str, float]:
    """Importance of each search parameter for a high proxy accuracy (normalised to sum 1).

    :class:`optuna.importance.PedAnovaImportanceEvaluator` on COMPLETE trials with the proxy
    accuracy as target (so it works for multi-objective studies). PED-ANOVA minimises its
    target, hence the negation; its top quantile is widened from 10% so that it holds at least
    :data:`IMPORTANCE_TOP_TRIALS` trials (at most half of them), as its authors advise.

    Raises:
        ValueError: from Optuna, e.g. for a study without COMPLETE trials.
    """
    n = len(_complete(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))
    quantile = min(0.5, max(0.1, IMPORTANCE_TOP_TRIALS / max(n, 1)))
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
    with warnings.catch_warnings():
        # PED-ANOVA warns about its direction and about sparse regimes; the figure's
        # annotation already says how many trials the importances rest on.
        warnings.filterwarnings("ignore", category=UserWarning)
        return optuna.importance.get_param_importances(
            study, evaluator=evaluator, target=_negated_accuracy
        )


@FIGURES.register("importances")
def importance_figure(study: optuna.Study) -> go.Figure:
    """The "Hyperparameter importances" figure of the search parameters for proxy accuracy.

    See :func:`accuracy_importances`. One horizontal bar per parameter, each labelled (the
    axis has ``dtick=1``); the figure is :func:`bar_figure_height` tall. With fewer than
    :data:`MIN_IMPORTANCE_TRIALS` trained trials, or when the evaluator fails, the figure
    carries an annotation saying why instead.
    """
    title = "Hyperparameter importances"
    axis = "importance for proxy accuracy"
    fig = go.Figure()

    def empty(why: str) -> go.Figure:
        _note(fig, why)
        fig.update_xaxes(range=[0, 1])  # importances are shares of 1
        fig.update_yaxes(showticklabels=False)
        return _titled(fig, title, axis, "parameter")

    n = len(_complete(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))
    if n < MIN_IMPORTANCE_TRIALS:
        return empty(
            f"needs at least {MIN_IMPORTANCE_TRIALS} trained trials with an accuracy; "
            f"the study has {n}"
        )
    try:
        importances = accuracy_importances(study)
    except Exception as exc:  # a report must not fail because an importance evaluator does
        return empty(f"importances could not be computed: {exc}")
    if not importances:
        return empty("no parameter was sampled in the trained trials")
    ranked = sorted(importances.items(), key=lambda kv: kv[1])
    names = [k for k, _ in ranked]
    fig.add_trace(
        go.Bar(
            x=[v for _, v in ranked],
            y=names,
            orientation="h",
            marker={"color": _TRAINED_COLOR},
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
            name="importance",
        )
    )
    # Every bar gets its label: plotly would skip every other one of a crowded category axis,
    # and the figure grows with the number of bars so that the labels have room.
    fig.update_yaxes(
        type="category",
        tickmode="linear",
        tick0=0,
        dtick=1,
        categoryorder="array",
        categoryarray=names,
        automargin=True,
    )
    fig.update_layout(showlegend=False, height=bar_figure_height(len(names)))
    return _titled(fig, title, f"{axis} ({n} trained trials)", "parameter")


# --------------------------------------------------------------------------- proxy fidelity
@FIGURES.register("proxy-vs-full")
def proxy_vs_full_figure(study: optuna.Study) -> go.Figure:
    """The "Proxy vs full accuracy (...)" figure: proxy vs full validation accuracy (what
    selection uses; the test accuracy is in the hover text).

    Without fully trained winners the figure says so (run ``nas train-winners``) and both
    axes span 0-100%.
    """
    trials = _trials(study)
    fidelity = proxy_fidelity(trials)
    by_number = {t.number: t for t in trials}
    winners = [by_number[n] for n in fidelity["trials"]]
    fig = go.Figure(
        go.Scatter(
            x=[accuracy_of(t) for t in winners],
            y=[full_val_accuracy(t) for t in winners],
            customdata=[t.number for t in winners],
            text=[str(t.number) for t in winners],
            textposition="top center",
            hovertext=[
                _hover(
                    t,
                    f"proxy {accuracy_of(t):.4f}, full val {full_val_accuracy(t):.4f}, "
                    f"test {_acc_text(t.user_attrs.get('full_accuracy'))}",
                    f"{t.user_attrs.get('full_epochs', '?')} full epochs",
                )
                for t in winners
            ],
            hoverinfo="text",
            mode="markers+text",
            marker={"color": _FRONT_COLOR, "size": 10},
            name="fully trained winners",
        )
    )
    fig.update_xaxes(tickformat=".1%")
    fig.update_yaxes(tickformat=".1%")
    if not winners:
        _note(fig, "no fully trained winners yet: run nas train-winners")
        fig.update_xaxes(range=[0, 1], tickformat=".0%")
        fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return _titled(
        fig,
        f"Proxy vs full accuracy ({fidelity_text(fidelity)})",
        "proxy validation accuracy",
        "full-training validation accuracy",
    )


# --------------------------------------------------------------------------- rejections
def rejection_rate_figure(trials: Sequence[FrozenTrial], window: int = ROLLING_WINDOW) -> go.Figure:
    """Rolling (last ``window`` candidates) and cumulative share of rejected candidates."""
    sampled = sampled_trials(trials)
    flags = [is_rejected(t) for t in sampled]
    rolling = [
        sum(flags[max(0, i + 1 - window) : i + 1]) / min(window, i + 1) for i in range(len(flags))
    ]
    cumulative = [sum(flags[: i + 1]) / (i + 1) for i in range(len(flags))]
    numbers = [t.number for t in sampled]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=numbers,
            y=rolling,
            mode="lines+markers",
            name=f"rolling share (last {window})",
            line={"color": _FRONT_COLOR},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=numbers,
            y=cumulative,
            mode="lines",
            name="cumulative share",
            line={"color": _REJECTED_COLOR, "dash": "dot"},
        )
    )
    fig.update_yaxes(tickformat=".0%", range=[0, 1.05])
    fig.update_xaxes(**integer_axis(numbers))
    if not sampled:
        _note(fig, "no candidates sampled yet")
    return _titled(fig, "Rejection rate over time", "trial number", "share rejected")


@FIGURES.register("rejection-rate")
def rejection_figure(study: optuna.Study) -> go.Figure:
    """The "Rejection rate over time" figure (see :func:`rejection_rate_figure`)."""
    return rejection_rate_figure(_trials(study), ROLLING_WINDOW)


# --------------------------------------------------------------------------- curves
@FIGURES.register("learning-curves")
def curves_figure(study: optuna.Study) -> go.Figure:
    """The "Learning curves" figure: validation accuracy per epoch, one line per trained trial.

    Early-stopped trials are dashed and their hover says at which rung and why; the rungs of
    successive halving are dotted vertical lines. Each kind shows once in the legend and
    toggles together.
    """
    fig = go.Figure()
    shown: set[str] = set()
    for t in _trials(study):
        curve = t.user_attrs.get("curve")
        if not isinstance(curve, list) or not curve:
            continue
        if t.state == TrialState.COMPLETE:
            group, line = "trained", {"color": _TRAINED_COLOR, "width": 1.5}
        elif is_stopped(t):
            group, line = "stopped early", {"color": _STOPPED_COLOR, "width": 1.5, "dash": "dash"}
        else:
            continue
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(curve) + 1)),
                y=curve,
                mode="lines+markers",
                line=line,
                marker={"size": 4},
                opacity=0.7,
                name=group,
                legendgroup=group,
                showlegend=group not in shown,
                customdata=[t.number] * len(curve),
                hovertext=[
                    _hover(t, f"epoch {i}: {a:.4f}", *_stop_lines(t, i))
                    for i, a in enumerate(curve, 1)
                ],
                hoverinfo="text",
            )
        )
        shown.add(group)
    fig.update_yaxes(tickformat=".0%")
    longest = max((len(t.y) for t in fig.data), default=1)
    fig.update_xaxes(**integer_axis([1, longest], most=20))
    for epoch in study_rungs(study):
        fig.add_vline(
            x=epoch,
            line={"dash": "dot", "color": "grey", "width": 1},
            annotation_text=f"rung {epoch}",
            annotation_position="top",
        )
    if not shown:
        _note(fig, "no learning curves recorded yet")
        _empty_accuracy(fig)
    return _titled(fig, "Learning curves", "epoch", "validation accuracy")


def _stop_lines(t: FrozenTrial, epoch: int) -> list[str]:
    """The hover lines of a stopped trial's last point: its rung and why it stopped."""
    if epoch != t.user_attrs.get("stopped_at_epoch"):
        return []
    return [str(t.user_attrs.get("stopped_early", ""))[:160]]


def study_rungs(study: optuna.Study) -> list[int]:
    """The epochs at which the study's successive halving decided (none if it was off)."""
    from nas.search.early_stop import SuccessiveHalving

    recorded = study.user_attrs.get("nas_settings", {})
    if recorded.get("early_stopping") != "sha" or "eta" not in recorded:
        return []  # off, or a study from before successive halving
    try:
        sha = SuccessiveHalving(
            eta=float(recorded["eta"]), min_epochs=int(recorded.get("min_epochs", 1))
        )
    except NasError:
        return []
    return sha.rungs(int(recorded.get("proxy_epochs", 0)))
