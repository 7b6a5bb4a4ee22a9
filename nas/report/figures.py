"""The figures of a study, one function each, and the registry the report pages share.

Every builder in :data:`FIGURES` takes an :class:`optuna.Study` and returns a
:class:`plotly.graph_objects.Figure` with a fixed title prefix, so the HTML report
(:func:`nas.report.write_report`) and optuna-dashboard (:func:`nas.report.attach_to_dashboard`)
show the same list, in the same order (:data:`FIGURE_ORDER`: the Pareto fronts first). A
builder never raises for a study that is empty or lacks optional user attributes: it draws
what there is and says in an annotation what is missing.

Figures read at a glance: axes that count (trial numbers, epochs) only have ticks on whole
numbers (:func:`integer_axis`); accuracy axes label their ticks with the decimals the tick
step needs (:func:`accuracy_axis`); size axes are logarithmic with labelled 1-2-5 ticks
(20k, 50k, 100k: :func:`size_axis`) and the study's limits drawn as labelled lines; long titles
wrap to fit optuna-dashboard's half-width panels (:func:`wrap_title`); and an empty figure's
accuracy axes span 0-100% rather than plotly's default -100% to 600%.

Trial categories come from :mod:`nas.study.stats`: trained (COMPLETE), stopped early
(PRUNED with ``stopped_early``), rejected before training (``rejected``) and failed. A
Pareto front is drawn for every metric accuracy can be traded against
(:data:`nas.objectives.METRICS`: params, FLOPs, and any registered later), for the studies
that recorded it.
"""

from __future__ import annotations

import html
import math
import re
import textwrap
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from nas.config import PLACEMENTS, ArchConfig
from nas.errors import NasError
from nas.objectives import METRICS, costs
from nas.proxy.fidelity import fidelity_text, proxy_fidelity
from nas.registry import Registry
from nas.study.record import StudyRecord, TrialRecord
from nas.study.stats import (
    accuracy_of,
    candidate_runs,
    comparable_contexts,
    full_val_accuracy,
    is_rejected,
    is_stopped,
    mean_accuracy,
    pareto_front,
    sampled_by,
    sampled_trials,
    study_costs,
    study_limit,
    study_rungs,
    study_sampler,
)
from nas.units import plural

#: A figure builder: a study in, a titled figure out.
FigureBuilder = Callable[[optuna.Study], go.Figure]

#: The name of the Pareto figure of a metric (``pareto-params``).
PARETO = "pareto-{}"


class FigureRegistry(Registry[FigureBuilder]):
    """The figure registry, with a Pareto front for every cost metric of
    :data:`nas.objectives.METRICS` (added when the registry is read, so an objective
    registered later has its figure)."""

    def _load(self) -> dict[str, FigureBuilder]:
        items = super()._load()
        fronts = [PARETO.format(m.name) for m in costs()]
        stale = [n for n in items if n.startswith(PARETO.format("")) and n not in fronts]
        if stale or any(name not in items for name in fronts):  # fronts first, registry order
            made = {n: items.get(n) or _pareto_builder(n.split("-", 1)[1]) for n in fronts}
            rest = {n: b for n, b in items.items() if n not in made and n not in stale}
            self._items = {**made, **rest}
        return self._items

    def names(self) -> list[str]:
        return list(self._load())


#: Figure builders by name. A name also gives the figure's HTML id and its optuna-dashboard
#: graph object id (:func:`graph_id`). They are shown in :data:`FIGURE_ORDER`.
FIGURES: FigureRegistry = FigureRegistry("figure")

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
#: Fewest trained trials with an accuracy for which parameter importances are computed: with
#: fewer, PED-ANOVA's top group (at least :data:`IMPORTANCE_TOP_TRIALS` trials, at most half)
#: has next to nothing to be compared with.
MIN_IMPORTANCE_TRIALS = 10
#: Below this many trained trials the importances carry a caveat: a rough guide, not a ranking.
RELIABLE_IMPORTANCE_TRIALS = 30
#: Fewest trials PED-ANOVA's top quantile should hold (see :func:`accuracy_importances`).
IMPORTANCE_TOP_TRIALS = 5
#: Most ticks :func:`integer_axis` puts on a trial-number axis.
MAX_TICKS = 12
#: Pixels per bar of the importance figure, and its height apart from the bars (title, axis).
BAR_PX = 22
BAR_FIGURE_EXTRA_PX = 170
#: Smallest height of a figure sized to its bars (:func:`importance_figure`).
MIN_BAR_FIGURE_PX = 450

#: Widest line (characters) of a figure's wrapped title: optuna-dashboard draws some figures
#: in half-width panels of about 550 pixels.
TITLE_WIDTH = 50
#: Tick label formats of an accuracy axis (a fraction shown as a percentage), by tick step
#: (plotly's ``dtick``; the bounds sit between its 1-2-5 steps): as many decimals as the step
#: needs, so that ticks 0.2 points apart read 8.2%, 8.4%, ... rather than 8%, 8%, ...
ACCURACY_TICK_FORMATS: tuple[tuple[float | None, float | None, str], ...] = (
    (0.0095, None, ".0%"),
    (0.00095, 0.0095, ".1%"),
    (0.000095, 0.00095, ".2%"),
    (0.0000095, 0.000095, ".3%"),
    (None, 0.0000095, ".4%"),
)

_TRAINED_COLOR = "#1f77b4"
_FRONT_COLOR = "#d62728"
_STOPPED_COLOR = "#ff7f0e"
_REJECTED_COLOR = "#7f7f7f"
_LIMIT_COLOR = "#444"
_STARTUP_FILL = "#9e9e9e"
#: Colours of the learning curves, one per trial (cycled).
_CURVE_COLORS: tuple[str, ...] = tuple(qualitative.Dark24)
_NO_ATTENTION = "no attention"


def graph_id(name: str) -> str:
    """Stable HTML id (and dashboard graph object id) of registered figure ``name``."""
    return f"nas-{name}"


def figure_order(names: Iterable[str]) -> list[str]:
    """``names`` in order: the Pareto fronts first (in the order of
    :data:`nas.objectives.METRICS`), then :data:`FIGURE_ORDER`; names in neither follow in
    their given order."""
    fronts = [PARETO.format(m.name) for m in costs()]
    rest = [name for name in FIGURE_ORDER if name not in fronts]
    rank = {name: i for i, name in enumerate([*fronts, *rest])}
    given = list(names)
    return sorted(given, key=lambda name: (rank.get(name, len(rank)), given.index(name)))


def shown_figures(study: optuna.Study) -> list[str]:
    """The figures of ``study``, in :func:`figure_order`: a Pareto front per metric it
    trades accuracy against or records for every candidate (params, FLOPs), and every other
    registered figure."""
    shown = {PARETO.format(m.name) for m in costs() if m.always}
    shown |= {PARETO.format(c) for c in StudyRecord(study).costs}
    fronts = {PARETO.format(m.name) for m in costs()}
    return figure_order(n for n in FIGURES.names() if n not in fronts or n in shown)


def build_figures(study: optuna.Study) -> list[tuple[str, go.Figure]]:
    """Every figure of ``study`` (:func:`shown_figures`) as (name, figure)."""
    return [(name, FIGURES[name](study)) for name in shown_figures(study)]


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


def accuracy_axis() -> dict[str, Any]:
    """Axis settings for an accuracy (a fraction shown as a percentage): tick labels with the
    decimals the tick step needs (:data:`ACCURACY_TICK_FORMATS`), also after zooming in.
    Pass the result to ``update_yaxes`` or ``update_xaxes``."""
    return {
        "tickformat": ".0%",
        "tickformatstops": [
            {"dtickrange": [low, high], "value": fmt} for low, high, fmt in ACCURACY_TICK_FORMATS
        ],
    }


def accuracy_tick_format(dtick: float) -> str:
    """The tick format :func:`accuracy_axis` gives ticks ``dtick`` apart (what plotly.js picks
    from the stops: the first whose range holds ``dtick``)."""
    for low, high, fmt in ACCURACY_TICK_FORMATS:
        if (low is None or low <= dtick) and (high is None or dtick <= high):
            return fmt
    return ".0%"


def size_label(value: float) -> str:
    """A count for an axis tick: ``500``, ``20k``, ``1.5M``, ``2G`` (three significant digits
    at most, no trailing zeros)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _nice_step(span: float, most: int) -> float:
    """The smallest 1-2-5 step that cuts ``span`` into at most ``most`` parts."""
    scale = 10.0 ** math.floor(math.log10(span / most)) if span > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if span / (factor * scale) <= most:
            return factor * scale
    return 10 * scale  # pragma: no cover - 10 always fits


def size_ticks(low: float, high: float, most: int = MAX_TICKS) -> list[float]:
    """Tick values of a logarithmic count axis over [``low``, ``high``]: the 1-2-5 values
    (10k, 20k, 50k, 100k, ...) in it, only the powers of ten when those would be more than
    ``most``, and evenly spaced round values when fewer than three 1-2-5 values fall in it
    (a narrow range, such as 250k-310k)."""
    if not 0 < low <= high:
        return []
    ticks: list[float] = []
    for factors in ((1, 2, 5), (1,)):
        ticks = [
            f * 10.0**k
            for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
            for f in factors
            if low <= f * 10.0**k <= high
        ]
        if len(ticks) <= most:
            break
    if len(ticks) >= 3:
        return ticks
    step = _nice_step(high - low, 5)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 6) for i in range(int((high - first) / step + 1e-9) + 1)]


def size_axis(values: Iterable[float], pad: float = 0.06) -> dict[str, Any]:
    """Settings of a logarithmic axis of counts (parameters, FLOPs) over ``values``: its range
    padded by ``pad`` of its span in decades (0.05 decades at least), and labelled ticks from
    :func:`size_ticks` (``20k``, ``50k``, ``100k``: no unlabelled minor ticks). Pass the result
    to ``update_xaxes``; an empty ``values`` gives ``{"type": "log"}``."""
    positive = [float(v) for v in values if v and v > 0]
    if not positive:
        return {"type": "log"}
    low, high = math.log10(min(positive)), math.log10(max(positive))
    margin = max(pad * (high - low), 0.05)
    low, high = low - margin, high + margin
    ticks = size_ticks(10**low, 10**high)
    return {
        "type": "log",
        "range": [low, high],
        "tickmode": "array",
        "tickvals": ticks,
        "ticktext": [size_label(v) for v in ticks],
    }


def padded_range(values: Iterable[float], share: float = 0.12, least: float = 0.01) -> list[float]:
    """[min, max] of ``values`` widened on both sides by ``share`` of their span (``least`` at
    least), so that no point sits on the plot's edge."""
    numbers = [float(v) for v in values]
    low, high = min(numbers), max(numbers)
    margin = max(share * (high - low), least)
    return [low - margin, high + margin]


def wrap_title(title: str, detail: str = "", width: int = TITLE_WIDTH) -> str:
    """A figure title for plotly: ``title`` then ``detail`` in a smaller font, wrapped at
    ``width`` characters so that it fits a half-width dashboard panel (both escaped)."""
    if not detail:
        return html.escape(title, quote=False)
    lines = textwrap.wrap(detail, width) or [""]
    small = "<br>".join(html.escape(line, quote=False) for line in lines)
    return f'{html.escape(title, quote=False)}<br><span style="font-size: 12px">{small}</span>'


def plain_title(fig: go.Figure, detail: bool = False) -> str:
    """The figure's title as plain text: its first line, or with ``detail`` all of it on one
    line (markup taken out)."""
    text = str(fig.layout.title.text or "")
    if not detail:
        text = text.split("<br>", 1)[0]
    return html.unescape(re.sub(r"<[^>]+>", "", text.replace("<br>", " ")))


def _title_lines(fig: go.Figure) -> int:
    return str(fig.layout.title.text or "").count("<br>") + 1


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
    data = TrialRecord(trial).arch
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
    preset = TrialRecord(trial).preset
    if preset:
        head += f" (preset {html.escape(str(preset))})"
    body = [html.escape(arch_summary(trial)), *(html.escape(line) for line in lines)]
    return "<br>".join([head, *body])


def _count(trial: FrozenTrial, key: str) -> float | None:
    return TrialRecord(trial).value(key)


def _size_line(trial: FrozenTrial) -> str:
    r = TrialRecord(trial)
    return ", ".join(m.show(v) for m in costs() if (v := r.value(m)) is not None)


def _titled(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    """Set the title (plotly markup, see :func:`wrap_title`), axis titles, a legend above the
    plot and a top margin with room for every line of the title."""
    fig.update_layout(
        title={"text": title},
        xaxis_title=x,
        yaxis_title=y,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
    )
    lines = _title_lines(fig)
    fig.update_layout(margin={"t": 74 + 16 * lines})
    if lines > 1:  # from the top down: plotly centres a title's lines on its anchor
        fig.update_layout(title={"yref": "container", "y": 1, "yanchor": "top", "pad": {"t": 16}})
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
def pareto_figure(
    trials: Sequence[FrozenTrial], second: str = "params", limit: float | None = None
) -> go.Figure:
    """Proxy accuracy against ``second`` (a cost metric: ``params``, ``flops``, ...), front
    highlighted.

    Trained trials are points; the non-dominated ones (:func:`nas.study.stats.pareto_front`)
    are highlighted and joined by a step line; early-stopped trials are drawn apart at their
    last accuracy; rejected candidates, which have no accuracy, sit in a strip below at their
    size. Every trace's ``customdata`` holds the trial numbers. The x axis is logarithmic with
    labelled 1-2-5 ticks (:func:`size_axis`); ``limit`` (the study's limit on ``second``), when
    given, is a labelled vertical line.

    Raises:
        ValueError: for a ``second`` that is no cost metric of :data:`nas.objectives.METRICS`.
    """
    names = [m.name for m in costs()]
    if second not in names:
        raise ValueError(f"second must be one of {', '.join(names)}, got {second!r}")
    label = METRICS[second].label
    trained = [t for t in _complete(trials) if _count(t, second) is not None]
    stopped = [t for t in _stopped(trials) if _count(t, second) is not None]
    rejected = [t for t in trials if is_rejected(t)]
    placed = [t for t in rejected if _count(t, second) is not None]
    elsewhere = 0  # against latency or memory: what was measured in an earlier context
    if METRICS[second].hardware:
        kept = comparable_contexts(trials)
        counted = len(trained) + len(stopped) + len(placed)
        trained, stopped, placed = (
            [t for t in group if TrialRecord(t).measured_in in kept]
            for group in (trained, stopped, placed)
        )
        elsewhere = counted - len(trained) - len(stopped) - len(placed)
    front = sorted(pareto_front(trials, second), key=lambda t: _count(t, second) or 0)

    fig = make_subplots(
        rows=2 if placed else 1,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.85, 0.15] if placed else None,
        vertical_spacing=0.04,
    )

    # a candidate trained several times is one point at its mean (as the front judges it)
    runs = candidate_runs(trials)
    drawn = {t.number for t in trained}  # a candidate is drawn once, by its first shown run
    shown_runs = ([t.number for t in group if t.number in drawn] for group in runs.values())
    again = {n for numbers in shown_runs for n in numbers[1:]}
    trained = [t for t in trained if t.number not in again]

    def accuracy(t: FrozenTrial) -> float | None:
        return mean_accuracy(runs[t.number]) if t.number in runs else accuracy_of(t)

    def shown(t: FrozenTrial) -> str:
        n = len(runs.get(t.number, [t]))
        text = f"accuracy {accuracy(t) or 0.0:.4f}"
        return text + (f" (mean of {n} runs)" if n > 1 else "")

    def points(group: Sequence[FrozenTrial], **style: Any) -> go.Scatter:
        return go.Scatter(
            x=[_count(t, second) for t in group],
            y=[accuracy(t) for t in group],
            customdata=[t.number for t in group],
            hovertext=[_hover(t, shown(t), _size_line(t)) for t in group],
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
                hovertext=[_hover(t, str(TrialRecord(t).rejected), _size_line(t)) for t in placed],
                hoverinfo="text",
                name="rejected (over the limit)",
                mode="markers",
                marker={"color": _REJECTED_COLOR, "symbol": "x", "size": 8},
            ),
            row=2,
            col=1,
        )
        fig.update_yaxes(showticklabels=False, title_text="rejected", row=2, col=1)
    sizes = [_count(t, second) or 0 for t in (*trained, *stopped, *placed)]
    fig.update_xaxes(**size_axis([*sizes, *([limit] if limit else [])]))
    fig.update_yaxes(title_text="proxy validation accuracy", row=1, col=1, **accuracy_axis())
    metric = METRICS[second]
    if limit:
        text = (
            f"{metric.fmt(limit)} {metric.unit}" if metric.unit else f"{size_label(limit)} {label}"
        )
        _limit_line(fig, limit, f"limit {text}", rows=2 if placed else 1)
    unplaced = len(rejected) - len(placed)
    x_title = metric.heading if metric.unit else label
    if unplaced:
        x_title += f" ({plural(unplaced, 'rejected candidate')} without a {label} value not shown)"
    if elsewhere:  # --remeasure: values of another device, batch or precision do not compare
        earlier = plural(elsewhere, "trial")
        x_title += f" ({earlier} measured in an earlier hardware context not shown)"
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


def _top_label(
    fig: go.Figure, x: float, text: str, *, xanchor: str, xshift: int, **style: Any
) -> None:
    """A label at the top of the (first) plot area, beside ``x`` in x-axis units: ``xanchor``
    says which of its sides is at ``x``, ``xshift`` moves it by pixels."""
    fig.add_annotation(
        x=x,
        y=1,
        xref="x",
        yref="y domain",
        text=text,
        showarrow=False,
        xanchor=xanchor,
        yanchor="top",
        xshift=xshift,
        **style,
    )


def _limit_line(fig: go.Figure, limit: float, text: str, rows: int) -> None:
    """A dashed vertical line at ``limit`` over every row of a log-x figure, labelled ``text``
    once at the top (an annotation's x on a log axis is the log of the value, a shape's is
    the value)."""
    for row in range(1, rows + 1):
        suffix = "" if row == 1 else str(row)
        fig.add_shape(
            type="line",
            x0=limit,
            x1=limit,
            y0=0,
            y1=1,
            xref=f"x{suffix}",
            yref=f"y{suffix} domain",
            line={"color": _LIMIT_COLOR, "dash": "dash", "width": 1.5},
        )
    _top_label(
        fig,
        math.log10(limit),
        text,
        xanchor="right",
        xshift=-4,
        font={"size": 12, "color": _LIMIT_COLOR},
        bgcolor="rgba(255,255,255,0.8)",
    )


def _pareto_builder(metric: str) -> FigureBuilder:
    """The "Pareto front: accuracy vs ``metric``" figure of a study (see
    :func:`pareto_figure`), with the study's limit on it if it has one."""

    def build(study: optuna.Study) -> go.Figure:
        return pareto_figure(_trials(study), metric, study_limit(study, metric))

    build.__name__ = f"pareto_{metric}_figure"
    return build


def pareto_params_figure(study: optuna.Study) -> go.Figure:
    """The "Pareto front: accuracy vs params" figure, with the study's parameter limit."""
    return FIGURES[PARETO.format("params")](study)


def pareto_flops_figure(study: optuna.Study) -> go.Figure:
    """The "Pareto front: accuracy vs FLOPs" figure, with the study's FLOPs limit if any."""
    return FIGURES[PARETO.format("flops")](study)


# --------------------------------------------------------------------------- history
def startup_runs(trials: Sequence[FrozenTrial], sampler: str = "tpe") -> list[tuple[int, int]]:
    """The start-up phase of a study as runs of consecutive trial numbers (first, last) whose
    candidates were sampled at random (:func:`nas.study.stats.sampled_by`); trials that were
    never sampled (queued, enqueued presets) end a run."""
    how = sampled_by(trials, sampler)
    runs: list[tuple[int, int]] = []
    for number in sorted(how):
        if how[number] != "startup":
            continue
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


@FIGURES.register("history")
def history_figure(study: optuna.Study) -> go.Figure:
    """The "Optimization history" figure: every trained trial's accuracy and the best so far.

    The start-up phase (the trials the sampler drew at random before modelling anything, see
    :func:`startup_runs`) is a shaded, labelled band, so that what the guided trials found
    can be told from what chance found.
    """
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
    fig.update_yaxes(**accuracy_axis())
    runs = startup_runs(trials, study_sampler(study))
    numbers = [t.number for t in (*complete, *stopped)]
    for i, (first, last) in enumerate(runs):
        fig.add_vrect(
            x0=first - 0.5,
            x1=last + 0.5,
            fillcolor=_STARTUP_FILL,
            opacity=0.18,
            line_width=0,
            layer="below",
        )
        if i == 0:
            span = f"trial {first}" if first == last else f"trials {first}-{runs[-1][1]}"
            _top_label(
                fig,
                first - 0.5,
                f"random start-up ({span})",
                xanchor="left",
                xshift=3,
                font={"size": 11, "color": "#555"},
            )
    if runs:
        numbers += [runs[0][0], runs[-1][1]]
    fig.update_xaxes(**integer_axis(numbers))
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
    fig.update_yaxes(**accuracy_axis())
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
    carries an annotation saying why instead; with fewer than
    :data:`RELIABLE_IMPORTANCE_TRIALS` its title says that the bars are a rough guide only.
    """
    title = "Hyperparameter importances"
    axis = "importance for proxy accuracy"
    fig = go.Figure()

    def empty(why: str) -> go.Figure:
        for i, line in enumerate(textwrap.wrap(why, 60)):
            _note(fig, line)
            fig.layout.annotations[-1].y = 0.5 - 0.07 * i
        fig.update_xaxes(range=[0, 1])  # importances are shares of 1
        fig.update_yaxes(showticklabels=False)
        return _titled(fig, title, axis, "parameter")

    n = len(_complete(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))
    if n < MIN_IMPORTANCE_TRIALS:
        return empty(
            f"needs at least {plural(MIN_IMPORTANCE_TRIALS, 'trained trial')} with an "
            f"accuracy; the study has {n:,}. With fewer, the few best trials that PED-ANOVA "
            "compares with the rest could differ in any parameter by chance, so the bars "
            "would rank noise."
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
    if n < RELIABLE_IMPORTANCE_TRIALS:
        title = wrap_title(
            title,
            f"a rough guide: only {plural(n, 'trained trial')} (fewer than "
            f"{RELIABLE_IMPORTANCE_TRIALS}), so the order may be chance",
        )
    return _titled(fig, title, f"{axis} ({plural(n, 'trained trial')})", "parameter")


# --------------------------------------------------------------------------- proxy fidelity
@FIGURES.register("proxy-vs-full")
def proxy_vs_full_figure(study: optuna.Study) -> go.Figure:
    """The "Proxy vs full accuracy" figure: proxy vs full validation accuracy (what
    selection uses; the test accuracy is in the hover text), with Kendall's tau on the
    title's next lines (:func:`wrap_title`: it fits optuna-dashboard's half-width panel).

    Both axes are padded around the winners (:func:`padded_range`). Without fully trained
    winners the figure says so (run ``nas train-winners``) and both axes span 0-100%.
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
                    f"test {_acc_text(TrialRecord(t).full_accuracy)}",
                    _full_epochs_text(t),
                )
                for t in winners
            ],
            hoverinfo="text",
            mode="markers+text",
            marker={"color": _FRONT_COLOR, "size": 10},
            name="fully trained winners",
        )
    )
    fig.update_xaxes(**accuracy_axis())
    fig.update_yaxes(**accuracy_axis())
    if winners:
        # padded so that no point (or its label, drawn above it) sits on the plot's edge
        fig.update_xaxes(range=padded_range(accuracy_of(t) or 0.0 for t in winners))
        low, high = padded_range(full_val_accuracy(t) or 0.0 for t in winners)
        fig.update_yaxes(range=[low, high + 0.08 * (high - low)])
    else:
        _note(fig, "no fully trained winners yet: run nas train-winners")
        fig.update_xaxes(range=[0, 1])
        fig.update_yaxes(range=[0, 1])
    return _titled(
        fig,
        wrap_title("Proxy vs full accuracy", fidelity_text(fidelity)),
        "proxy validation accuracy",
        "full-training validation accuracy",
    )


def _full_epochs_text(t: FrozenTrial) -> str:
    """``after 1 full epoch``, ``after 200 full epochs`` (or unknown)."""
    epochs = TrialRecord(t).full_epochs
    if isinstance(epochs, int) and not isinstance(epochs, bool):
        return f"after {plural(epochs, 'full epoch')}"
    return "full epochs unknown"


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

    Each trial has its own colour (:data:`_CURVE_COLORS`, cycled) and its own legend entry
    (``trial 5``; ``front`` for the Pareto front's trials, which are drawn thicker;
    ``stopped at epoch 2`` for early-stopped ones, which are dashed and whose hover says why).
    The legend is a column right of the plot (it scrolls when long), so that the labels of
    the rungs of successive halving (dotted vertical lines) stay clear of it.
    """
    trials = _trials(study)
    front = {t.number for t in pareto_front(trials, study_costs(study))}
    fig = go.Figure()
    drawn = 0
    for t in trials:
        curve = list(TrialRecord(t).curve)
        if not isinstance(curve, list) or not curve:
            continue
        if t.state == TrialState.COMPLETE:
            dash, name = None, f"trial {t.number}"
            if t.number in front:
                name += " (front)"
        elif is_stopped(t):
            dash = "dash"
            epoch = TrialRecord(t).stopped_at_epoch
            name = f"trial {t.number} (stopped {f'at epoch {epoch}' if epoch else 'early'})"
        else:
            continue
        color = _CURVE_COLORS[drawn % len(_CURVE_COLORS)]
        drawn += 1
        fig.add_trace(
            go.Scatter(
                x=list(range(1, len(curve) + 1)),
                y=curve,
                mode="lines+markers",
                line={"color": color, "width": 3 if t.number in front else 1.5, "dash": dash},
                marker={"size": 6 if t.number in front else 4},
                opacity=0.9,
                name=name,
                customdata=[t.number] * len(curve),
                hovertext=[
                    _hover(t, f"epoch {i}: {a:.4f}", *_stop_lines(t, i))
                    for i, a in enumerate(curve, 1)
                ],
                hoverinfo="text",
            )
        )
    fig.update_yaxes(**accuracy_axis())
    longest = max((len(t.y) for t in fig.data), default=1)
    fig.update_xaxes(**integer_axis([1, longest], most=20))
    for epoch in study_rungs(study):
        fig.add_vline(
            x=epoch,
            line={"dash": "dot", "color": "grey", "width": 1},
            annotation_text=f"rung {epoch}",
            annotation_position="top",
        )
    if not drawn:
        _note(fig, "no learning curves recorded yet")
        _empty_accuracy(fig)
    _titled(fig, "Learning curves", "epoch", "validation accuracy")
    fig.update_layout(
        showlegend=bool(drawn),
        legend={
            "orientation": "v",
            "x": 1.02,
            "xanchor": "left",
            "y": 1,
            "yanchor": "top",
            "title": {"text": "dashed: stopped early<br>thick: Pareto front"},
            "font": {"size": 11},
        },
    )
    return fig


def _stop_lines(t: FrozenTrial, epoch: int) -> list[str]:
    """The hover lines of a stopped trial's last point: its rung and why it stopped."""
    if epoch != TrialRecord(t).stopped_at_epoch:
        return []
    return [str(TrialRecord(t).stopped_early or "")[:160]]
