"""How much time early stopping saves on a real search, and what it costs.

Runs the same search twice on real images, with and without the early stopper. Both use
Optuna's RandomSampler with the same seed, so both sample the same candidates in the same
order: the only difference is whether hopeless proxies are stopped. Prints JSON: wall time
of each run, trials stopped, the best proxy accuracy and the Pareto front of each.

    python benchmarks/early_stopping.py --data-dir /tmp/cifar10 --trials 10 --proxy-epochs 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from nas.search.events import SilentMonitor
from nas.search.runner import run_search
from nas.search.settings import SearchSettings
from nas.search.stats import accuracy_of, is_stopped
from nas.units import parse_count


def run(settings: SearchSettings) -> dict[str, Any]:
    start = time.perf_counter()
    outcome = run_search(settings, SilentMonitor(), log=lambda text: None)
    seconds = time.perf_counter() - start
    s = outcome.stats
    trained = [t for t in s.trials if t.user_attrs.get("curve")]
    return {
        "seconds": round(seconds, 1),
        "trained": s.trained,
        "stopped_early": sum(map(is_stopped, s.trials)),
        "epochs_trained": sum(len(t.user_attrs["curve"]) for t in trained),
        "best_accuracy": s.best_accuracy,
        "pareto_front": sorted(t.number for t in s.pareto),
        "accuracies": {t.number: accuracy_of(t) for t in trained},
    }


def main() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="image folder (DIR/train, DIR/test)")
    parser.add_argument("--space", default="search_spaces/small_cifar.toml")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--proxy-epochs", type=int, default=3)
    parser.add_argument("--proxy-subset", type=int, default=1000)
    parser.add_argument("--proxy-val", type=int, default=500)
    parser.add_argument("--param-limit", default="2M")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, early in (("with_early_stopping", True), ("without", False)):
            settings = SearchSettings(
                space=args.space,
                dataset="imagefolder",
                data_dir=args.data_dir,
                param_limit=parse_count(args.param_limit),
                trials=args.trials,
                sampler="random",
                proxy_epochs=args.proxy_epochs,
                proxy_subset=args.proxy_subset,
                proxy_val=args.proxy_val,
                storage=f"sqlite:///{Path(tmp)}/{label}.db",
                study=label,
                seed=args.seed,
                device=args.device,
                early_stopping=early,
            )
            results[label] = run(settings)
    with_es, without = results["with_early_stopping"], results["without"]
    print(
        json.dumps(
            {
                "space": args.space,
                "trials": args.trials,
                "proxy_epochs": args.proxy_epochs,
                "proxy_subset": args.proxy_subset,
                "proxy_val": args.proxy_val,
                "device": args.device,
                **results,
                "time_saved_fraction": round(1 - with_es["seconds"] / without["seconds"], 3),
                "same_best_accuracy": with_es["best_accuracy"] == without["best_accuracy"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
