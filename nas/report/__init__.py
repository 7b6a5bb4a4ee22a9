"""Reports of a study: figures, one self-contained HTML page, optuna-dashboard graphs.

``FIGURES`` is the one registry of figure builders; :func:`write_report` and
:func:`attach_to_dashboard` both show every figure in it, in ``FIGURE_ORDER`` (the Pareto
fronts first).
"""

from __future__ import annotations

from nas.proxy.fidelity import ProxyFidelity, fidelity_text, proxy_fidelity
from nas.report.figures import (
    FIGURE_ORDER,
    FIGURES,
    ROLLING_WINDOW,
    FigureBuilder,
    accuracy_by_figure,
    accuracy_importances,
    arch_summary,
    attention_figure,
    build_figures,
    curves_figure,
    figure_order,
    graph_id,
    history_figure,
    importance_figure,
    pareto_figure,
    pareto_flops_figure,
    pareto_params_figure,
    placement_figure,
    proxy_vs_full_figure,
    rejection_figure,
    rejection_rate_figure,
)
from nas.report.html import attach_to_dashboard, render_report, winners, write_report

__all__ = [
    "FIGURES",
    "FIGURE_ORDER",
    "ROLLING_WINDOW",
    "FigureBuilder",
    "ProxyFidelity",
    "accuracy_by_figure",
    "accuracy_importances",
    "arch_summary",
    "attach_to_dashboard",
    "attention_figure",
    "build_figures",
    "curves_figure",
    "fidelity_text",
    "figure_order",
    "graph_id",
    "history_figure",
    "importance_figure",
    "pareto_figure",
    "pareto_flops_figure",
    "pareto_params_figure",
    "placement_figure",
    "proxy_fidelity",
    "proxy_vs_full_figure",
    "rejection_figure",
    "rejection_rate_figure",
    "render_report",
    "winners",
    "write_report",
]
