"""The search: settings, the objective, evaluators, early stopping, the loop, workers, and
the Python entry point (:class:`Search`).

What a trial records, what is measured about it and how samplers treat it live below, in
the study core (:mod:`nas.study`, :mod:`nas.objectives`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_exports

if TYPE_CHECKING:
    from nas.search.api import Search, run_search
    from nas.search.early_stop import SuccessiveHalving
    from nas.search.evaluate import Evaluator, ProxyEvaluator
    from nas.search.loop import SearchOutcome, search_loop
    from nas.search.objective import suggest
    from nas.search.settings import SearchSettings

__all__ = [
    "Evaluator",
    "ProxyEvaluator",
    "Search",
    "SearchOutcome",
    "SearchSettings",
    "SuccessiveHalving",
    "run_search",
    "search_loop",
    "suggest",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "Search": "nas.search.api",
        "run_search": "nas.search.api",
        "SuccessiveHalving": "nas.search.early_stop",
        "Evaluator": "nas.search.evaluate",
        "ProxyEvaluator": "nas.search.evaluate",
        "SearchOutcome": "nas.search.loop",
        "search_loop": "nas.search.loop",
        "suggest": "nas.search.objective",
        "SearchSettings": "nas.search.settings",
    },
)
