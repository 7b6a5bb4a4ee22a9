"""The search: settings, storage, samplers, the objective, early stopping and the loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_exports

if TYPE_CHECKING:
    from nas.search.early_stop import SuccessiveHalving
    from nas.search.loop import SearchOutcome, run_search
    from nas.search.settings import SearchSettings
    from nas.search.stats import StudyStats, pareto_front, study_stats

__all__ = [
    "SearchOutcome",
    "SearchSettings",
    "StudyStats",
    "SuccessiveHalving",
    "pareto_front",
    "run_search",
    "study_stats",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "SuccessiveHalving": "nas.search.early_stop",
        "SearchOutcome": "nas.search.loop",
        "run_search": "nas.search.loop",
        "SearchSettings": "nas.search.settings",
        "StudyStats": "nas.search.stats",
        "pareto_front": "nas.search.stats",
        "study_stats": "nas.search.stats",
    },
)
