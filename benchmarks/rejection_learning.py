"""Does the sampler learn the parameter limit? Rejection rate early vs late in a study.

Runs the real search (space, fvcore counting, rejection with constraint values, the loop)
with training replaced by a synthetic score that grows with the network's size, so that a
study of dozens of trained trials takes seconds; prints the share of rejected candidates in
the first and the last third of the sampled candidates, per seed and as min/median/max.
Ablations (``--ablation``), each the same search with one thing taken away:

* ``no-constraint``: rejections without ``trial.set_constraint``: the sampler sees them only
  as pruned trials (TPE ranks pruned trials without values last anyway, so for TPE this
  changes nothing; NSGA-II no longer counts them in its generations);
* ``hidden``: rejections end FAIL, which samplers ignore: the sampler never learns of them.

    python benchmarks/rejection_learning.py --sampler tpe --seeds 0,1,2
    python benchmarks/rejection_learning.py --sampler nsga2 --ablation no-constraint --json
    python benchmarks/rejection_learning.py --sampler optuna-nsga2   # Optuna's own, population 20
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from nas.search.api import Search
from nas.search.evaluate import Evaluator, TrialRun
from nas.search.events import SilentMonitor
from nas.search.loop import Hooks
from nas.search.objective import Candidates
from nas.search.settings import SearchSettings
from nas.study.record import TrialWriter
from nas.study.samplers import register_baseline
from nas.units import parse_count


class SyntheticScore:
    """Training replaced by a score that grows with size (the real loop, measured counts)."""

    def __init__(self, opened: Any, device: Any) -> None:
        return None

    def describe(self) -> str:
        return "synthetic scores, no training"

    def measure(self, candidate: Any, metric: str) -> float:
        from nas.budget import measure_metric

        return measure_metric(candidate, metric)

    def knows(self, metric: str) -> bool:
        from nas.objectives import METRICS

        return METRICS[metric].before_training

    def evaluate(self, candidate: Any, label: str, run: TrialRun) -> float:
        accuracy = min(0.95, 0.3 + 0.04 * math.log(run.values["params"]))
        run.writer.epoch([accuracy])
        return accuracy


class Unconstrained(Candidates):
    """Ablation: rejections are pruned trials without constraint values."""

    def draw(self, trial: optuna.trial.Trial, writer: TrialWriter) -> Any:
        return super().draw(_NoConstraints(trial), writer)  # type: ignore[arg-type]


class _NoConstraints:
    """A trial whose constraint values are dropped (everything else passes through)."""

    def __init__(self, trial: optuna.trial.Trial) -> None:
        self._trial = trial

    def set_constraint(self, key: str, value: float) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


class HiddenRejection(RuntimeError):
    """Ends a rejected trial FAIL in the ``hidden`` ablation."""


class Hidden(Unconstrained):
    """Ablation: rejections end FAIL, so the sampler never learns of them."""

    @staticmethod
    def _reject(writer: TrialWriter, reason: str) -> Any:
        writer.rejected(reason)
        raise HiddenRejection(reason)


ABLATIONS: dict[str, type[Candidates]] = {
    "none": Candidates,
    "no-constraint": Unconstrained,
    "hidden": Hidden,
}


def _synthetic(opened: Any, device: Any) -> Evaluator:
    return SyntheticScore(opened, device)


def measure(
    space: str,
    trials: int,
    limit: int,
    sampler: str,
    seed: int,
    storage: str,
    *,
    ablation: str = "none",
) -> dict[str, Any]:
    """Run the synthetic study; its size, rejection rates by thirds and time."""
    settings = SearchSettings(
        space=space,
        dataset="fake",
        limits={"params": limit},
        trials=trials,
        sampler=sampler,
        storage=storage,
        study="learn",
        seed=seed,
        device="cpu",
        quiet=True,
        max_failures=100_000,  # the hidden ablation ends every rejection FAIL
    )
    start = time.perf_counter()
    hooks = Hooks(make_evaluator=_synthetic, candidates=ABLATIONS[ablation])
    outcome = Search(settings=settings).outcome(SilentMonitor(), lambda text: None, hooks)
    s = outcome.stats
    return {
        "sampler": sampler,
        "seed": seed,
        "ablation": ablation,
        "trained": s.trained,
        "rejected": s.rejected,
        "rejection_first_third": s.rejection_first_third,
        "rejection_last_third": s.rejection_last_third,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="search_spaces/attention_resnet.toml")
    parser.add_argument("--trials", type=int, default=45)
    parser.add_argument("--param-limit", default="300k")
    parser.add_argument(
        "--sampler",
        default="tpe",
        help="a sampler of nas search, or optuna-nsga2: Optuna's NSGA-II as it comes, with the "
        "population of 20 that nas used before (a baseline)",
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (0,1,2)")
    parser.add_argument(
        "--ablation", choices=list(ABLATIONS), default="none", help="what to take away (none)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.sampler == "optuna-nsga2":
        register_baseline(
            "optuna-nsga2",
            "Optuna's NSGA-II, population 20",
            lambda seed, trials, objectives: optuna.samplers.NSGAIISampler(
                seed=seed, population_size=20
            ),
        )
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(
                measure(
                    args.space,
                    args.trials,
                    parse_count(args.param_limit),
                    args.sampler,
                    seed,
                    f"sqlite:///{Path(tmp)}/learn.db",
                    ablation=args.ablation,
                )
            )
    if args.json:
        print(json.dumps({"space": args.space, "param_limit": args.param_limit, "runs": runs}))
        return
    print(
        f"{args.sampler}, ablation {args.ablation}, "
        f"{args.trials} trained trials, limit {args.param_limit}, space {args.space}"
    )
    for r in runs:
        print(
            f"  seed {r['seed']}: rejected {r['rejection_first_third']:.2f} of the first third, "
            f"{r['rejection_last_third']:.2f} of the last ({r['rejected']} rejections, "
            f"{r['seconds']}s)"
        )
    first = [r["rejection_first_third"] for r in runs]
    last = [r["rejection_last_third"] for r in runs]
    print(f"  first third min/median/max: {_spread(first)}")
    print(f"  last third  min/median/max: {_spread(last)}")


if __name__ == "__main__":
    main()
