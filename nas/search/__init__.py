"""The search: settings, storage, samplers, the objective, early stopping and the loop."""

from __future__ import annotations

from nas.search.early_stop import SuccessiveHalving
from nas.search.runner import SearchOutcome, run_search
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
