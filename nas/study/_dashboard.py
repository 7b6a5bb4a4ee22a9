"""The one place that touches optuna-dashboard's private modules (sibling of
:mod:`nas.study._optuna`).

optuna-dashboard has no public way to read a note back, to change how a trial's user
attributes are shown, or to order the figures attached to a study. ``nas`` reads and wraps
three private names, each checked against optuna-dashboard 0.17 to 0.21
(:data:`CHECKED_AGAINST`); where one is missing, the caller is told and the dashboard is left
as it is. ``tests/test_layers.py`` keeps every other module off them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

#: The optuna-dashboard versions the private names below were checked against.
CHECKED_AGAINST = "0.17 to 0.21"


def note_body(system_attrs: dict[str, Any], trial_id: int | None) -> str:
    """The note optuna-dashboard stores among a study's system attributes for trial id
    ``trial_id`` (None: the study's note): ``optuna_dashboard._note.get_note_from_system_attrs``."""
    from optuna_dashboard._note import get_note_from_system_attrs

    body: str = get_note_from_system_attrs(system_attrs, trial_id)["body"]
    return body


def wrap_view(
    attrs: Callable[[Callable[..., Any], dict[str, Any]], Any],
    graphs: Callable[[Callable[..., Any], dict[str, Any]], Any],
) -> bool:
    """Serve optuna-dashboard's pages through ``attrs`` (wrapping
    ``_serializer.serialize_attrs``: how a trial's user attributes are sent) and ``graphs``
    (wrapping ``_app.get_plotly_graph_objects``: the figures attached to a study), each
    called with the original function first. Only what the page is sent changes. Returns
    whether it could (False: those names are missing); wrapping again does nothing more."""
    try:
        from optuna_dashboard import _app, _serializer
    except ImportError:
        return False
    serialize = getattr(_serializer, "serialize_attrs", None)
    get_graphs = getattr(_app, "get_plotly_graph_objects", None)
    if not callable(serialize) or not callable(get_graphs):
        return False
    if not getattr(serialize, "_nas_view", False):
        wrapped = functools.wraps(serialize)(functools.partial(attrs, serialize))
        wrapped._nas_view = True  # type: ignore[attr-defined]
        _serializer.serialize_attrs = wrapped
    if not getattr(get_graphs, "_nas_view", False):
        ordered = functools.wraps(get_graphs)(functools.partial(graphs, get_graphs))
        ordered._nas_view = True  # type: ignore[attr-defined]
        _app.get_plotly_graph_objects = ordered
    return True
