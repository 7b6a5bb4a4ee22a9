"""Does the sampler learn the parameter limit? Rejection rate early vs late in a study.

Runs the real search (space, fvcore counting, rejection with constraint values, the loop)
with training replaced by a synthetic score that grows with the network's size, so that a
study of dozens of trained trials takes seconds; prints the share of rejected candidates in
the first and the last third of the sampled candidates. Prints JSON.

    python benchmarks/rejection_learning.py --trials 45 --param-limit 300k --sampler tpe
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from nas.config import ArchConfig
from nas.search.events import LogMonitor
from nas.search.objective import Objective
from nas.search.runner import run_search
from nas.search.settings import SearchSettings
from nas.units import parse_count


class SyntheticObjective(Objective):
    """The real objective with training replaced by a score that grows with size."""

    def _train(
        self, trial: optuna.trial.Trial, arch: ArchConfig, params: int, flops: int, started: float
    ) -> tuple[float, float]:
        accuracy = min(0.95, 0.3 + 0.04 * math.log(params))
        trial.set_user_attr("curve", [accuracy])
        trial.set_user_attr("accuracy", accuracy)
        return accuracy, float(params)


class _Silent(LogMonitor):
    def _log(self, text: str) -> None:
        return None


def measure(
    space: str, trials: int, limit: int, sampler: str, seed: int, storage: str
) -> dict[str, Any]:
    """Run the synthetic study; its size, rejection rates by thirds and time."""
    settings = SearchSettings(
        space=space,
        dataset="fake",
        param_limit=limit,
        trials=trials,
        sampler=sampler,
        storage=storage,
        study="learn",
        seed=seed,
        device="cpu",
    )
    start = time.perf_counter()
    outcome = run_search(
        settings, _Silent(), objective_cls=SyntheticObjective, log=lambda text: None
    )
    s = outcome.stats
    return {
        "sampler": sampler,
        "trained": s.trained,
        "rejected": s.rejected,
        "rejection_first_third": s.rejection_first_third,
        "rejection_last_third": s.rejection_last_third,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="search_spaces/attention_resnet.toml")
    parser.add_argument("--trials", type=int, default=45)
    parser.add_argument("--param-limit", default="300k")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(
            args.space,
            args.trials,
            parse_count(args.param_limit),
            args.sampler,
            args.seed,
            f"sqlite:///{Path(tmp)}/learn.db",
        )
    print(json.dumps({"space": args.space, "param_limit": args.param_limit, **result}, indent=2))


if __name__ == "__main__":
    main()
