"""optuna-dashboard on a study storage, with the report's figures and winner notes attached.

What a trial's detail pane shows: optuna-dashboard writes each user attribute on one line
that does not wrap, a dict as its JSON (cut at 1,024 characters). The ``arch`` user attribute
stays the architecture's dict (``nas export``, ``nas train-winners`` and the report read it,
and existing studies hold it), so the readable views are:

* a winner's note (:func:`winner_note`): a one-line summary and the config as indented JSON
  in a code block, lines at most :data:`NOTE_WIDTH` wide where the JSON allows, without the
  attention knobs its type does not take;
* the study's note (:func:`study_note`): a fake-data warning where it applies, how the
  guided trials compare with the random start-up ones, the proxy fidelity;
* in ``nas dashboard``, :func:`install_dashboard_view` shows a user attribute longer than
  :data:`MAX_SHOWN_CHARS` shortened (``arch`` as its one-line summary) instead of as one
  line several screens wide, and the attached figures in
  :data:`nas.report.figures.FIGURE_ORDER` (optuna-dashboard lists them in no fixed order).
  Only what the web page is sent changes; the stored attributes are untouched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, cast

import optuna
from optuna.trial import FrozenTrial

from nas.config import ATTENTION_KNOBS, ArchConfig
from nas.objectives import METRICS, hardware
from nas.proxy.fidelity import ProxyFidelity, fidelity_text
from nas.study import _dashboard, _optuna
from nas.study.record import StudyRecord, TrialRecord
from nas.units import plural

#: Widest line of the JSON in a note, where the JSON allows it (a long string stays whole):
#: the note pane of a trial in optuna-dashboard is narrow.
NOTE_WIDTH = 52
#: Longest user attribute value optuna-dashboard is sent whole by ``nas dashboard``: the
#: dashboard draws a value on one line that does not wrap, and a longer one would widen the
#: trial's pane past a 1280-pixel window (the note's code block with it).
MAX_SHOWN_CHARS = 80


def pretty_json(value: Any, width: int = NOTE_WIDTH) -> str:
    """``value`` as indented JSON that keeps a list or object on one line when it fits in
    ``width`` characters (``json.dumps(indent=2)`` puts every number of a list on its own
    line). ``json.loads`` of the result gives ``value`` back."""
    return _pretty(value, 0, 0, width)


def _pretty(value: Any, indent: int, prefix: int, width: int) -> str:
    """``value`` starting ``prefix`` characters after an ``indent``-space margin."""
    compact = json.dumps(value)
    # "<", not "<=": room for the comma that may follow
    if not isinstance(value, dict | list) or not value or indent + prefix + len(compact) < width:
        return compact
    inner = indent + 2
    pad = " " * inner
    if isinstance(value, dict):
        items = [
            f"{pad}{json.dumps(k)}: {_pretty(v, inner, len(json.dumps(k)) + 2, width)}"
            for k, v in value.items()
        ]
        start, end = "{", "}"
    else:
        items = [f"{pad}{_pretty(v, inner, 0, width)}" for v in value]
        start, end = "[", "]"
    return start + "\n" + ",\n".join(items) + "\n" + " " * indent + end


def shown_config(arch: ArchConfig) -> dict[str, Any]:
    """``arch`` as a dict without the attention settings its attention type does not use:
    only ``type`` for ``none``; else ``type``, ``placement``, ``join``, the type's knobs
    (:data:`nas.config.ATTENTION_KNOBS`) and ``repeats`` where set. A config keeps unused
    settings at their defaults, so :meth:`ArchConfig.from_dict` of the result gives ``arch``
    back."""
    data = arch.to_dict()
    attention = data["attention"]
    kind = attention["type"]
    keep = ["type"] if kind == "none" else ["type", "placement", "join", *ATTENTION_KNOBS[kind]]
    if attention.get("repeats"):
        keep.append("repeats")
    data["attention"] = {k: attention[k] for k in keep}
    return data


def winner_note(trial: FrozenTrial) -> str:
    """Markdown note of a winner: its scores, its value of every metric it recorded, a
    one-line architecture summary and its config (the ``arch`` record, without the knobs its
    attention type does not take, see :func:`shown_config`) as indented JSON in a code block
    of short lines."""
    r = TrialRecord(trial)
    arch = ArchConfig.from_dict(r.arch or {})
    full, val, epochs = r.full_accuracy, r.full_val_accuracy, r.full_epochs
    after = f"after {plural(epochs, 'full epoch')}" if epochs is not None else "after full training"
    measured = "; ".join(
        f"{m.label}: {v:,.0f}" if not m.unit else f"{m.label}: {m.show(v)}"
        for name, m in METRICS.items()
        if name != "accuracy" and (v := r.value(name)) is not None
    )
    if any(r.value(m) is not None for m in hardware()):
        measured += " (where and how: the study's note)"
    lines = [
        f"## Trial {trial.number}: {arch.summary()}",
        "",
        f"* proxy validation accuracy: {r.accuracy or 0.0:.4f}",
        f"* {after}: validation accuracy {val:.4f} (selection uses this), test accuracy "
        f"{full:.4f} (scored once)"
        if full is not None and val is not None
        else "* not fully trained yet (nas train-winners)",
        f"* {measured}",
        "",
        f"Config (settings its attention type does not use left out; "
        f"`nas export --trial {trial.number}` writes the whole `arch`):",
        "",
        "```json",
        pretty_json(shown_config(arch)),
        "```",
    ]
    return "\n".join(lines)


def study_note(study: optuna.Study) -> str:
    """Markdown note of the study: a warning for a study on fake data, how its guided trials
    compare with its random start-up ones
    (:func:`nas.study.stats.study_startup_comparison`) and, once winners were fully
    trained, the proxy fidelity."""
    from nas.hardware.context import study_hardware_text
    from nas.report.html import FAKE_DATA_NOTICE, is_fake_data
    from nas.study.stats import BEST_RULE, study_startup_comparison, study_stats

    parts = []
    if is_fake_data(study):
        parts.append(f"**{FAKE_DATA_NOTICE}**\n")
    c = study_startup_comparison(study)
    rows = []
    for label, group in (("random start-up", c.startup), ("guided", c.guided)):
        best = (
            f"best trial {group.best_trial} at {group.best_accuracy:.4f}"
            if group.best_trial is not None and group.best_accuracy is not None
            else "no complete trial"
        )
        rows.append(
            f"* {label}: {plural(group.trained, 'trained trial')}, {best}, "
            f"front hypervolume {group.hypervolume:.3f}"
        )
    parts.append(
        f"## Guided search vs its random start-up\n\nSampler `{c.sampler}`: {c.verdict}.\n\n"
        + "\n".join(rows)
        + "\n\nThe optimization-history figure shades the start-up trials.\n"
    )
    stats = study_stats(study, front=False)
    if stats.best is not None:
        parts.append(
            f"## The best trial\n\nTrial {stats.best.number} (chosen by {stats.best_rule}). "
            "optuna-dashboard's Best Trials card lists every Pareto-optimal trial; `nas export "
            f"--best`, the search's summary and the report mean this one: {BEST_RULE}.\n"
        )
    hardware = study_hardware_text(study)
    if hardware:
        parts.append(f"## Latency and memory\n\n{hardware[0].upper()}{hardware[1:]}.\n")
    fidelity = StudyRecord(study).proxy_fidelity
    if fidelity:  # stored by nas train-winners as a ProxyFidelity
        parts.append(
            "## Proxy fidelity\n\nBetween proxy accuracy and validation accuracy after full "
            f"training: **{fidelity_text(cast(ProxyFidelity, fidelity))}**.\n"
        )
    return "\n".join(parts)


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def save_generated_note(study: optuna.Study, trial: FrozenTrial | None, body: str) -> bool:
    """Write the generated note ``body`` on ``trial`` (None: on the study), unless someone
    edited the note in the dashboard since nas last wrote it: a note that is neither empty
    nor the one nas wrote is the user's and is kept. Returns whether it was written."""
    from optuna_dashboard import save_note

    trial_id = _optuna.trial_id(trial) if trial is not None else None
    record = StudyRecord(study)
    current = record.note(trial_id)
    if current and _sha1(current) != record.note_hash(trial_id):
        return False  # edited by a person: theirs now
    if current != body:
        target = study if trial is None else optuna.trial.Trial(study, _optuna.trial_id(trial))
        save_note(target, body)
    record.set_note_hash(trial_id, _sha1(body))
    return True


def left_alone(study: optuna.Study) -> str:
    """Why ``nas dashboard`` attaches no figures or notes to ``study`` ("": it attaches them).
    It attaches them to the studies nas scored (``nas search`` or ``nas fidelity`` recorded
    their settings); a study of the user's own objective, whose candidates ``nas.suggest``
    drew, is ranked by that objective, which nas does not know (as ``nas report`` refuses
    it), and another study in the database is not nas's at all."""
    from nas.study.record import FIDELITY_SETTINGS, SEARCH_SETTINGS

    record = StudyRecord(study)
    if any(record.get(key) is not None for key in (SEARCH_SETTINGS, FIDELITY_SETTINGS)):
        return ""
    if any(TrialRecord(t).arch is not None for t in study.get_trials(deepcopy=False)):
        return (
            "scored by your own objective (nas.suggest), which nas does not rank, so no nas "
            "figures or notes; optuna-dashboard shows its trials as Optuna does"
        )
    return "not made by nas, left as it is"


def annotate(study: optuna.Study) -> tuple[list[str], list[int], int]:
    """Attach the report's figures, a note per winner (Pareto trials and fully trained
    ones) and the study's note (:func:`study_note`) to ``study``; returns the figure ids,
    the noted trial numbers and how many notes were kept because someone edited them in the
    dashboard."""
    from nas.report import attach_to_dashboard, winners

    figures = attach_to_dashboard(study)
    noted = winners(study)
    kept = sum(not save_generated_note(study, trial, winner_note(trial)) for trial in noted)
    kept += not save_generated_note(study, None, study_note(study))
    return figures, sorted(t.number for t in noted), kept


# --------------------------------------------------------------------------- dashboard view
def shown_attr(key: str, value: str) -> str:
    """What optuna-dashboard shows for user attribute ``key``, given the text it would show.

    Text up to :data:`MAX_SHOWN_CHARS` characters is shown as it is. Longer text, which the
    dashboard would draw on one line several screens wide, is shortened to at most that many:
    an ``arch`` to its one-line summary (:meth:`nas.config.ArchConfig.summary`), anything else
    to its start and its length.
    """
    if len(value) <= MAX_SHOWN_CHARS:
        return value
    if key == "arch":
        try:
            summary: str | None = ArchConfig.from_dict(json.loads(value)).summary()
        except Exception:  # cut at 1,024 characters, or not a config: the page must not fail
            summary = None
        if summary is not None:
            shown = f"{summary} (summary)"
            if len(shown) <= MAX_SHOWN_CHARS:
                return shown
            return (
                summary if len(summary) <= MAX_SHOWN_CHARS else summary[: MAX_SHOWN_CHARS - 1] + "…"
            )
    tail = f" … ({len(value):,} characters)"
    return value[: MAX_SHOWN_CHARS - len(tail)].rstrip() + tail


def _shown_attrs(
    serialize: Callable[[dict[str, Any]], list[dict[str, str]]], attrs: dict[str, Any]
) -> list[dict[str, str]]:
    """optuna-dashboard's serialised ``attrs`` with long values shortened (:func:`shown_attr`).

    An ``arch`` is summarised from the stored dict itself, not from the dashboard's text of
    it, which is cut at 1,024 characters.
    """
    shown = serialize(attrs)
    for item in shown:
        key, text = item["key"], item["value"]
        if key == "arch" and isinstance(attrs.get(key), dict):
            text = json.dumps(attrs[key])
        if len(text) > MAX_SHOWN_CHARS:
            item["value"] = shown_attr(key, text)
    return shown


def ordered_graph_objects(graphs: dict[str, str]) -> dict[str, str]:
    """The dashboard's stored figures (id -> plotly JSON) in
    :data:`nas.report.figures.FIGURE_ORDER`, the Pareto fronts first; figures that nas did
    not attach follow, by id."""
    from nas.report.figures import FIGURES, figure_order, graph_id

    rank = {graph_id(name): i for i, name in enumerate(figure_order(FIGURES.names()))}
    return {k: graphs[k] for k in sorted(graphs, key=lambda k: (rank.get(k, len(rank)), k))}


def _ordered_graphs(
    get: Callable[[dict[str, Any]], dict[str, str]], system_attrs: dict[str, Any]
) -> dict[str, str]:
    return ordered_graph_objects(get(system_attrs))


def install_dashboard_view() -> bool:
    """Make optuna-dashboard, when served from this process, show long user attributes
    shortened (:func:`shown_attr`) and the attached figures in order
    (:func:`ordered_graph_objects`). Returns whether it could (see
    :func:`nas.study._dashboard.wrap_view`: where optuna-dashboard's internals are missing
    the dashboard is left as it is). Calling it again does nothing more; ``nas dashboard``
    calls it before it serves.
    """
    return _dashboard.wrap_view(_shown_attrs, _ordered_graphs)
