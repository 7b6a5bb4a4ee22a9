"""Does the guided search beat random sampling of its own space? Yang et al.'s protocol
("NAS evaluation is frustratingly hard", ICLR 2020) at this machine's scale.

Arms, all through the real search loop (space, budget check, rejection, proxy trainer,
successive halving) with the same limits, proxy and budget in trained proxy epochs:

* ``tpe``: the default search, TPE with successive halving;
* ``random``: Optuna's RandomSampler through the same loop with the same stopping;
* ``nsga2``: NSGA-II with the same stopping;
* ``tpe-nostop`` (``--arms`` to add it): TPE without early stopping.

For each seed the arms run one after the other, their order rotated from seed to seed. Then
each arm's front, the Pareto front (proxy accuracy against parameters) of every candidate it
trained to the end of the proxy, is retrained at one reference fidelity with one recipe on
paired data (every model sees the same batches; an architecture found by several arms trains
once) and scored on the validation split; the arm's reference front is the Pareto front of
those at the reference fidelity. The presets that fit both limits, trained the same way, give
the hand-design line. Per arm and seed: best reference accuracy, hypervolume of the reference
front (accuracy against parameters / limit), RI = 100 (acc - acc_random) / acc_random, proxy
seconds; min / median / max over seeds; and the anytime curve, hypervolume of the proxy
front against cumulative proxy seconds, with the time each arm needs to reach the random
arm's final hypervolume. Everything is written to ``--out`` (``results.json`` with every
trial and the settings that made it, written atomically; ``anytime.html``); an interrupted
run resumes from it, and a run with other settings is refused rather than mixed in.

    python benchmarks/search_vs_random.py --data-dir /tmp/cifar10 --out /tmp/svr
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from nas.budget import Budget
from nas.config import ArchConfig
from nas.data import load_dataset
from nas.errors import NasError
from nas.files import read_results, write_json_atomic
from nas.presets import PRESETS, preset
from nas.proxy.context import ProxySpec, init_seed, make_trainer, proxy_context
from nas.search.api import Search
from nas.search.events import SilentMonitor
from nas.search.loop import Hooks
from nas.search.settings import SearchSettings
from nas.study.record import TrialRecord
from nas.study.stats import StudyStats, dominates, hypervolume
from nas.training import resolve_device
from nas.units import parse_count

ARMS = {
    "auto": {"sampler": "auto", "early_stopping": "sha"},
    "tpe": {"sampler": "tpe", "early_stopping": "sha"},
    "local": {"sampler": "local", "early_stopping": "sha"},
    "random": {"sampler": "random", "early_stopping": "sha"},
    "nsga2": {"sampler": "nsga2", "early_stopping": "sha"},
    "tpe-nostop": {"sampler": "tpe", "early_stopping": "off"},
}


def epoch_budget(budget: int) -> Callable[[StudyStats], str]:
    """Stop once the study's trials trained ``budget`` proxy epochs in all (the last trial
    may go a few epochs over; the arm records what it used)."""

    def until(stats: StudyStats) -> str:
        used = sum(len(TrialRecord(t).curve) for t in stats.trials)
        return f"{used} proxy epochs trained (budget {budget})" if used >= budget else ""

    return until


def run_arm(settings: SearchSettings, budget: int) -> tuple[list[dict[str, Any]], int | None]:
    """One search (the real loop, stopped on the epoch budget); returns a row per finished
    trial, in the order they finished, and the sampler's population (NSGA-II; None for the
    others)."""
    hooks = Hooks(until=epoch_budget(budget))
    outcome = Search(settings=settings).outcome(SilentMonitor(), lambda text: None, hooks)
    study = outcome.study
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete]
    rows = [_row(t) for t in sorted(trials, key=lambda t: t.datetime_complete or 0)]
    return rows, getattr(study.sampler, "population_size", None)


def _row(t: FrozenTrial) -> dict[str, Any]:
    r = TrialRecord(t)
    return {
        "number": t.number,
        "state": t.state.name,
        "sampled_by": r.sampled_by,
        "arch": r.arch,
        "params": r.params,
        "flops": r.flops,
        "rejected": r.rejected,
        "accuracy": r.accuracy,
        "epochs": len(r.curve),
        "seconds": (r.seconds or 0.0) if r.curve else 0.0,
        "complete": t.state == TrialState.COMPLETE,
    }


def anytime(rows: list[dict[str, Any]], limit: float) -> list[tuple[float, float]]:
    """(cumulative proxy seconds, hypervolume of the proxy front so far) after each trial."""
    spent, points, curve = 0.0, [], []
    for r in rows:
        spent += r["seconds"]
        if r["complete"]:
            points.append((r["accuracy"], r["params"]))
        curve.append((round(spent, 1), round(hypervolume(points, limit), 4)))
    return curve


def front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Pareto front (proxy accuracy up, parameters down) of every trial trained to the
    end of the proxy, most accurate first."""
    done = [r for r in rows if r["complete"]]
    points = [(r["accuracy"], r["params"]) for r in done]
    kept = [
        r for r, p in zip(done, points, strict=True) if not any(dominates(o, p) for o in points)
    ]
    return sorted(kept, key=lambda r: -r["accuracy"])


def key_of(arch: dict[str, Any]) -> str:
    return json.dumps(arch, sort_keys=True)


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def reference_trainer(args: argparse.Namespace) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Train an architecture at the reference fidelity (paired data, fixed initial-weight
    seed); returns its validation accuracy and seconds."""
    data = load_dataset("imagefolder", args.data_dir)
    epochs, subset = (int(x) for x in args.reference.lower().split("x"))
    spec = ProxySpec(epochs, subset, args.val, None, 0.8, "standard")
    ctx = proxy_context(spec, data, resolve_device(args.device), data_seed=12345)

    def train(arch: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        result = make_trainer(ctx, ArchConfig.from_dict(arch), init_seed(12345, 0)).fit()
        return {"accuracy": result.accuracy, "seconds": round(time.perf_counter() - started, 1)}

    return train


def main() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", required=True, help="image folder (DIR/train, DIR/test)")
    p.add_argument("--out", required=True, help="folder for results.json, anytime.html, studies")
    p.add_argument("--space", default="search_spaces/small_cifar.toml")
    p.add_argument("--param-limit", default="300k")
    p.add_argument("--flops-limit", default="50M")
    p.add_argument("--arms", default="auto,random,nsga2", help=f"of {', '.join(ARMS)}")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--budget", type=int, default=60, help="trained proxy epochs per arm")
    p.add_argument("--proxy-epochs", type=int, default=3)
    p.add_argument("--proxy-subset", type=int, default=2000)
    p.add_argument("--proxy-val", type=int, default=1000)
    p.add_argument("--reference", default="5x8000", help="EPOCHSxIMAGES of the retraining")
    p.add_argument("--val", type=int, default=2000, help="validation images of the retraining")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "data_dir", "device")}
    try:  # earlier results of these settings resume; of others, are refused
        results: dict[str, Any] = read_results(path, settings) or {"settings": settings}
    except NasError as exc:
        raise SystemExit(str(exc)) from None
    runs: dict[str, Any] = results.setdefault("runs", {})
    limit = float(parse_count(args.param_limit))
    arms = args.arms.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()

    def save() -> None:
        write_json_atomic(path, results)

    for n, seed in enumerate(seeds):  # the searches, arms interleaved, order rotated
        for arm in arms[n % len(arms) :] + arms[: n % len(arms)]:
            name = f"{arm}-s{seed}"
            if name in runs:
                continue
            t0 = time.perf_counter()
            arm_settings = SearchSettings(
                space=args.space,
                dataset="imagefolder",
                data_dir=args.data_dir,
                limits={
                    "params": parse_count(args.param_limit),
                    "flops": parse_count(args.flops_limit),
                },
                # The loop stops on the epoch budget; a trained trial costs at least one
                # epoch, so ``trials = budget`` never stops it first, and NSGA-II's population
                # is what a user asking for ``--trials budget`` gets (a quarter of it).
                trials=args.budget,
                proxy_epochs=args.proxy_epochs,
                proxy_subset=args.proxy_subset,
                proxy_val=args.proxy_val,
                storage=f"sqlite:///{out / name}.db",
                study=name,
                seed=seed,
                device=args.device,
                quiet=True,
                sampler=ARMS[arm]["sampler"],
                early_stopping=ARMS[arm]["early_stopping"],
            )
            rows, population = run_arm(arm_settings, args.budget)
            runs[name] = {
                "arm": arm,
                "seed": seed,
                "trials": rows,
                "anytime": anytime(rows, limit),
                "population": population,
            }
            save()
            print(f"{name}: {len(rows)} trials, {time.perf_counter() - t0:.0f}s", flush=True)

    train = reference_trainer(args)
    reference: dict[str, Any] = results.setdefault("reference", {})
    budget = Budget(
        {"params": parse_count(args.param_limit), "flops": parse_count(args.flops_limit)}
    )
    todo = [(f"preset:{n}", preset(n).to_dict()) for n in PRESETS if budget.check(preset(n)).fits]
    for name, run in runs.items():
        todo += [(name, r["arch"]) for r in front(run["trials"])]
    for origin, arch in todo:
        key = key_of(arch)
        if key in reference:
            continue
        reference[key] = {**train(arch), "params": budget.check(ArchConfig.from_dict(arch)).params}
        save()
        print(f"reference {origin}: {reference[key]}", flush=True)

    summary = summarize(results, arms, seeds, limit)
    results["summary"] = summary
    results["seconds"] = round(time.perf_counter() - started, 1)
    save()
    write_figure(results, arms, out / "anytime.html")
    print(json.dumps(summary, indent=1))


def summarize(
    results: dict[str, Any], arms: list[str], seeds: list[int], limit: float
) -> dict[str, Any]:
    """Per arm, min / median / max over seeds of the reference and proxy figures; the
    reference figures are those of the arm's proxy front retrained (:func:`front`)."""
    reference = results["reference"]
    per: dict[str, dict[int, dict[str, float]]] = {a: {} for a in arms}
    for arm in arms:
        for seed in seeds:
            run = results["runs"][f"{arm}-s{seed}"]
            found = [reference[key_of(r["arch"])] for r in front(run["trials"])]
            per[arm][seed] = {
                "best_reference_accuracy": max(f["accuracy"] for f in found),
                "reference_hypervolume": hypervolume(
                    [(f["accuracy"], f["params"]) for f in found], limit
                ),
                "proxy_seconds": sum(r["seconds"] for r in run["trials"]),
                "proxy_epochs": sum(r["epochs"] for r in run["trials"]),
                "trained": sum(1 for r in run["trials"] if r["epochs"]),
                "final_proxy_hypervolume": run["anytime"][-1][1] if run["anytime"] else 0.0,
            }
    summary: dict[str, Any] = {}
    for arm in arms:
        rows = [per[arm][s] for s in seeds]
        entry: dict[str, Any] = {key: spread([r[key] for r in rows]) for key in rows[0]}
        if "random" in arms:
            ri = [
                100
                * (
                    per[arm][s]["best_reference_accuracy"]
                    - per["random"][s]["best_reference_accuracy"]
                )
                / per["random"][s]["best_reference_accuracy"]
                for s in seeds
            ]
            entry["RI"] = spread(ri)
            entry["seconds_to_random_final_hv"] = [
                _time_to(
                    results["runs"][f"{arm}-s{s}"]["anytime"],
                    per["random"][s]["final_proxy_hypervolume"],
                )
                for s in seeds
            ]
        summary[arm] = entry
    summary["presets"] = {
        origin: reference[key_of(preset(origin).to_dict())]
        for origin in PRESETS
        if key_of(preset(origin).to_dict()) in reference
    }
    return summary


def _time_to(curve: list[list[float]], target: float) -> float | None:
    """Proxy seconds until the hypervolume first reaches ``target`` (None: never)."""
    return next((t for t, hv in curve if hv >= target), None)


def write_figure(results: dict[str, Any], arms: list[str], path: Path) -> None:
    """The anytime curves, one line per arm and seed, as one HTML figure."""
    import plotly.graph_objects as go

    colors = {"tpe": "#1f77b4", "random": "#7f7f7f", "nsga2": "#2ca02c", "tpe-nostop": "#9467bd"}
    fig = go.Figure()
    for name, run in results["runs"].items():
        if run["arm"] not in arms:
            continue
        xs, ys = zip(*run["anytime"], strict=True) if run["anytime"] else ((), ())
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"shape": "hv", "color": colors.get(run["arm"])},
                name=name,
                legendgroup=run["arm"],
            )
        )
    fig.update_layout(
        title="Hypervolume of the proxy front against cumulative proxy seconds",
        xaxis_title="proxy seconds (cumulative)",
        yaxis_title="hypervolume (accuracy x params / limit)",
        template="plotly_white",
    )
    fig.write_html(path, include_plotlyjs="cdn")


if __name__ == "__main__":
    main()
