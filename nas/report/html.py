"""The study report as one self-contained HTML page, and the same figures in optuna-dashboard.

:func:`write_report` writes a header (a notice for a study on fake data; study, objectives,
counts, rejection rates, best trial, how the guided trials compare with the random start-up
ones, proxy fidelity), every figure of :data:`nas.report.figures.FIGURES` and a table of the
winners; plotly.js is inlined once, in the page head, so the file opens offline.
:func:`attach_to_dashboard` stores the same figures in the study for optuna-dashboard.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.hardware.context import study_hardware_text
from nas.objectives import METRICS
from nas.proxy.fidelity import fidelity_text, proxy_fidelity
from nas.report.figures import arch_summary, build_figures, fit_height, graph_id, plain_title
from nas.study.record import StudyRecord, TrialRecord
from nas.study.stats import (
    MIN_PER_THIRD,
    StudyStats,
    accuracy_of,
    candidate_runs,
    choose_best,
    full_val_accuracy,
    is_rejected,
    mean_accuracy,
    sampled_trials,
    study_costs,
    study_startup_comparison,
    study_stats,
)
from nas.units import human, plural

#: Height of each figure in the page (a figure that sets its own height keeps it).
FIGURE_HEIGHT = "520px"
#: Height of the box optuna-dashboard draws each attached figure in (fixed by its web page).
DASHBOARD_GRAPH_HEIGHT = 450

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 0.3em 1.2em; }
dl.summary dt { font-weight: 600; }
dl.summary dd { margin: 0; }
p.notice { background: #fff4e5; border-left: 4px solid #f0a020; padding: 0.6em 1em; }
p.notice.fake { background: #fdecea; border-left-color: #d32f2f; font-weight: 600; }
nav ul { columns: 2; }
section.figure { margin: 1.5em 0; border-top: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; font-size: 0.92em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.5em; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 0.6em; max-height: 30em; overflow: auto; }
"""


def write_report(study: optuna.Study, path: str | Path) -> Path:
    """Write the report of ``study`` to ``path`` (one HTML file) and return the path.

    Works for any study, even one without trials: the page then says there are no trained
    trials (whether that is an error is the caller's decision). Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(study), encoding="utf-8")
    return path


def render_report(study: optuna.Study) -> str:
    """The report page of ``study`` as an HTML string."""
    from plotly.offline import get_plotlyjs

    stats = study_stats(study)
    figures = build_figures(study)
    title = f"nas report: {study.study_name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        _header(study, stats),
        "<nav><h2>Figures</h2><ul>",
        *(
            f'<li><a href="#{graph_id(name)}">{escape(plain_title(fig))}</a></li>'
            for name, fig in figures
        ),
        '<li><a href="#winners">Winners</a></li>',
        "</ul></nav>",
    ]
    for name, fig in figures:
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=graph_id(name),
            default_height=FIGURE_HEIGHT,
            config={"responsive": True, "displaylogo": False},
        )
        parts.append(f'<section class="figure">{div}</section>')
    front = {t.number for t in stats.pareto}
    parts += [_winners_table(winners(study, stats), front, stats.trials), "</body>", "</html>", ""]
    return "\n".join(parts)


def attach_to_dashboard(study: optuna.Study) -> list[str]:
    """Save every registered figure into ``study`` for optuna-dashboard; return their ids,
    in :data:`nas.report.figures.FIGURE_ORDER` (the Pareto fronts first).

    Each figure keeps one id (:func:`nas.report.figures.graph_id`, e.g. ``nas-pareto-params``),
    so attaching again overwrites the previous figures instead of adding copies. A figure
    taller than the dashboard's graph box is fitted to it
    (:func:`nas.report.figures.fit_height`). optuna-dashboard itself lists stored figures in
    no fixed order; ``nas dashboard`` shows them in this one
    (:func:`nas.dashboard.install_dashboard_view`).
    """
    from optuna_dashboard import save_plotly_graph_object

    ids = []
    for name, fig in build_figures(study):
        fitted = fit_height(fig, DASHBOARD_GRAPH_HEIGHT)
        ids.append(save_plotly_graph_object(study, fitted, graph_object_id=graph_id(name)))
    return ids


def winners(study: optuna.Study, stats: StudyStats | None = None) -> list[FrozenTrial]:
    """Pareto-front trials and every fully trained trial, best proxy accuracy first."""
    if stats is None:
        stats = study_stats(study)
    chosen = {t.number: t for t in stats.pareto}
    for t in stats.trials:
        if full_val_accuracy(t) is not None or TrialRecord(t).full_accuracy is not None:
            chosen[t.number] = t
    return sorted(chosen.values(), key=lambda t: (-(accuracy_of(t) or 0.0), t.number))


# --------------------------------------------------------------------------- pieces
def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _acc(value: object) -> str:
    return f"{float(value):.4f}" if isinstance(value, int | float) else "-"


def _size(value: object, metric: str = "params") -> str:
    """A metric's value in a table cell: counts as ``1.20M`` with the exact count on hover,
    measured values (latency, memory) as the metric formats them."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    m = METRICS[metric]
    if m.unit:
        return escape(m.fmt(float(value)))
    return f'<span title="{int(value):,}">{escape(human(value))}</span>'


def _proxy_cell(t: FrozenTrial, runs: Mapping[int, Sequence[FrozenTrial]]) -> str:
    """``0.1562<br><small>mean of 2</small>`` for a repeated candidate, else its accuracy
    (``runs``: :func:`nas.study.stats.candidate_runs`)."""
    group = runs.get(t.number)
    if group is None:
        return _acc(accuracy_of(t))
    text = _acc(mean_accuracy(group))
    return text + (f"<br><small>mean of {len(group)}</small>" if len(group) > 1 else "")


def _objectives(study: optuna.Study) -> str:
    """Each objective as every command names it (``accuracy (maximize)``), with Optuna's
    metric names for a study without a record of its own."""
    metric_names = study.metric_names or []
    ours = {m.dashboard for _, m in METRICS.items()}
    names: Sequence[str | None] = (
        metric_names  # a study of the user's own objective: its own names
        if metric_names and not set(metric_names) <= ours and not StudyRecord(study).settings
        else StudyRecord(study).objectives
    )
    if len(names) != len(study.directions):
        names = [None] * len(study.directions)
    return ", ".join(
        f"{name or f'objective {i}'} ({d.name.lower()})"
        for i, (name, d) in enumerate(zip(names, study.directions, strict=False))
    )


def _rejection(stats: StudyStats) -> str:
    """The rejection rate of every sampled candidate, and of the first and last thirds once
    each third has :data:`~nas.study.stats.MIN_PER_THIRD` candidates."""
    sampled = sampled_trials(stats.trials)
    if not sampled:
        return "no candidate sampled yet"
    overall = f"{_pct(sum(map(is_rejected, sampled)) / len(sampled))} of {len(sampled)} sampled"
    if stats.rejection_first_third is None:
        return (
            f"{overall} candidates (the first and last thirds are compared from "
            f"{3 * MIN_PER_THIRD} on)"
        )
    return (
        f"{overall}: {_pct(stats.rejection_first_third)} of the first third, "
        f"{_pct(stats.rejection_last_third)} of the last third"
    )


def _header(study: optuna.Study, stats: StudyStats) -> str:
    counts = (
        f"trained {stats.trained} (complete {stats.complete}, stopped early {stats.stopped}), "
        f"rejected {stats.rejected}, failed {stats.failed}"
    )
    if stats.running or stats.waiting:
        counts += f", running {stats.running}, waiting {stats.waiting}"
    rejection = _rejection(stats)
    trained = [t for t in stats.trials if t.state == TrialState.COMPLETE and TrialRecord(t).arch]
    if not trained:
        best_text = "no trained trials yet"
    else:
        best, rule = choose_best(trained, study_costs(study))  # 'nas export --best'
        scores = f"proxy accuracy {_acc(accuracy_of(best))}"
        if full_val_accuracy(best) is not None:
            scores += (
                f", full val accuracy {_acc(full_val_accuracy(best))}, "
                f"test accuracy {_acc(TrialRecord(best).full_accuracy)}"
            )
        best_text = (
            f"trial {best.number}: {scores}, {_size_text(best)}; {arch_summary(best)} "
            f"(chosen by {rule})"
        )
    fidelity = proxy_fidelity(stats.trials)
    fidelity_line = fidelity_text(fidelity)
    if fidelity["trials"]:
        fidelity_line += " (trials " + ", ".join(map(str, fidelity["trials"])) + ")"
    zero_cost = zero_cost_text(stats.trials)
    hardware = study_hardware_text(study)
    rows = [
        ("Study", study.study_name),
        ("Objectives", _objectives(study)),
        ("Trials", counts),
        ("Rejection rate", rejection),
        ("Best trial", best_text),
        ("Guided vs random start-up", startup_text(study, stats.trials)),
        ("Proxy fidelity", fidelity_line),
        ("Zero-cost scores vs proxy accuracy", zero_cost),
        *([("Hardware", hardware)] if hardware else []),
    ]
    out = []
    if is_fake_data(study):
        out.append(f'<p class="notice fake">{escape(FAKE_DATA_NOTICE)}</p>')
    out.append('<dl class="summary">')
    out += [f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows]
    out.append("</dl>")
    if stats.trained == 0:
        out.append(
            '<p class="notice">The study has no trained trials yet: the figures below are '
            "empty and there are no winners.</p>"
        )
    return "\n".join(out)


#: What the report (and the dashboard's study note) says about a study on ``--dataset fake``.
FAKE_DATA_NOTICE = (
    "Fake data: this study was searched on --dataset fake (random images whose class only "
    "shifts their colour), a smoke test. Its accuracies say nothing about any real data set "
    "and its winners are no result; search a real data set for those."
)


def is_fake_data(study: optuna.Study) -> bool:
    """Whether ``study`` was searched on ``--dataset fake`` (its recorded ``nas_settings``)."""
    return StudyRecord(study).dataset == "fake"


def startup_text(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> str:
    """The verdict of :func:`nas.study.stats.study_startup_comparison`, with the sampler."""
    comparison = study_startup_comparison(study, trials)
    return f"sampler {comparison.sampler}: {comparison.verdict}"


#: Below this many trials, a Kendall tau is printed with a caveat on its spread.
FEW_FOR_TAU = 20


def zero_cost_text(trials: Sequence[FrozenTrial]) -> str:
    """Kendall's tau of each zero-cost score against proxy accuracy over the trained trials
    that have both, best first, or why there is none."""
    from nas.proxy.ranking import agreement

    scored = [
        (t, z)
        for t in trials
        if t.state == TrialState.COMPLETE
        and accuracy_of(t) is not None
        and (z := TrialRecord(t).zero_cost) is not None
    ]
    if len(scored) < 3:
        return f"needs 3 trained trials with scores, has {len(scored)}"
    names = sorted({k for _, z in scored for k in z if k != "seconds"})
    parts = []
    for name in names:
        values = [z.get(name) for _, z in scored]
        a = agreement(
            [float("nan") if v is None else float(v) for v in values],
            [accuracy_of(t) or 0.0 for t, _ in scored],
            resamples=500,
        )
        if a["kendall_tau"] is not None:
            parts.append((a["kendall_tau"], f"{name} {a['kendall_tau']:+.2f}"))
    parts.sort(key=lambda p: -p[0])
    text = f"Kendall's tau over {len(scored)} trials: " + ", ".join(p[1] for p in parts)
    if len(scored) < FEW_FOR_TAU:
        text += (
            f" (over {len(scored)} trials a tau moves by about "
            f"±{1 / math.sqrt(len(scored)):.2f}: a hint, not a ranking)"
        )
    return text


def _epochs(value: object) -> str:
    """``1 epoch``, ``200 epochs``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return plural(value, "epoch")
    return f"{value} epochs"


def _size_text(t: FrozenTrial) -> str:
    r = TrialRecord(t)
    parts = [
        m.show(v)
        for name, m in METRICS.items()
        if name != "accuracy" and (v := r.value(m)) is not None
    ]
    return ", ".join(parts) or "size unknown"


def _shown_metrics(trials: Sequence[FrozenTrial]) -> list[str]:
    """The cost metrics the winners table shows: those recorded for every candidate and
    any other some winner has a value of (the study's objectives)."""
    records = TrialRecord.all(trials)
    return [
        name
        for name, m in METRICS.items()
        if m.direction == "minimize" and (m.always or any(r.value(m) is not None for r in records))
    ]


def _winners_table(
    trials: Sequence[FrozenTrial], front: set[int], every: Sequence[FrozenTrial] = ()
) -> str:
    """The winners' table; a candidate trained several times (among ``every`` trial of the
    study) shows its mean proxy accuracy, as the front and the best trial judge it."""
    runs = candidate_runs(every)
    out = ['<section id="winners">', "<h2>Winners</h2>"]
    if not trials:
        out += ["<p>No winners yet: no trial is on the Pareto front or fully trained.</p>"]
        out.append("</section>")
        return "\n".join(out)
    out.append(
        "<p>The Pareto-front trials and every fully trained trial (<code>nas train-winners"
        "</code>). Proxy accuracy is on the validation split after the short proxy training; "
        "full val accuracy is on the same held-out validation split after full training and "
        "is what <code>nas export --best</code> chooses by; test accuracy is scored once per "
        "winner at the end and never used to choose.</p>"
    )
    metrics = _shown_metrics(trials)
    header = [
        "trial",
        "proxy accuracy",
        "full val accuracy",
        "test accuracy",
        *(
            escape(METRICS[m].label + (f" ({METRICS[m].unit})" if METRICS[m].unit else ""))
            for m in metrics
        ),
        "architecture",
        "config",
    ]
    out.append("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead>")
    out.append("<tbody>")
    on_front = "<br><small>Pareto front</small>"
    for t in trials:
        r = TrialRecord(t)
        preset = f"<br><small>preset {escape(r.preset)}</small>" if r.preset else ""
        extra = []
        if r.full_epochs is not None:
            extra.append(f"full training: {escape(_epochs(r.full_epochs))}")
        if r.checkpoint:
            extra.append(f"checkpoint: <code>{escape(r.checkpoint)}</code>")
        arch = r.arch
        config = escape(json.dumps(arch, indent=2, sort_keys=True)) if arch else "(none)"
        details = (
            "<details><summary>config JSON</summary>"
            + "".join(f"<p>{e}</p>" for e in extra)
            + f"<pre>{config}</pre></details>"
        )
        cells = [
            f'<td class="num">{t.number}{on_front if t.number in front else ""}</td>',
            f'<td class="num">{_proxy_cell(t, runs)}</td>',
            f'<td class="num">{_acc(r.full_val_accuracy)}</td>',
            f'<td class="num">{_acc(r.full_accuracy)}</td>',
            *(f'<td class="num">{_size(r.value(m), m)}</td>' for m in metrics),
            f"<td>{escape(arch_summary(t))}{preset}</td>",
            f"<td>{details}</td>",
        ]
        out.append(f'<tr id="winner-{t.number}">' + "".join(cells) + "</tr>")
    out += ["</tbody></table>", "</section>"]
    return "\n".join(out)
