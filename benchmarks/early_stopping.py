"""What successive halving saves on a real search, and what it costs.

For each seed, the same search runs once without early stopping and once per ``--eta`` with
it, arms interleaved (the order rotates from seed to seed). Every arm uses Optuna's
RandomSampler with that seed, and the study's data seed is the same, so every arm samples the
same candidates in the same order, initialises them identically and feeds them identical
batches: on a CPU a trial that is not stopped ends with bitwise the same accuracy in every arm.
The only difference is which proxies are stopped.

Per arm it prints, with min/median/max over seeds: proxy seconds (the trained trials' own
time, sampling to score), wall seconds, epochs trained, trials stopped, the best proxy
accuracy, and the hypervolume of the final front of (accuracy, parameters) with reference
point (accuracy 0, parameters = the limit), parameters scaled to [0, 1] by the limit; and per
seed and arm the members of the no-stopping front that the arm stopped (lost), and whether it
stopped the no-stopping arm's best trial (the most accurate at the full proxy).

An arm is ``sha eta=E m=M e=F``: successive halving with that eta, at least M trials at a
rung before any is stopped there (``--min-members``) and its first rung after F epochs
(``--min-epochs``); ``--eta``, ``--min-members`` and ``--min-epochs`` take comma-separated
values, one arm per combination.

    python benchmarks/early_stopping.py --data-dir /tmp/cifar10 --trials 20 --eta 2 \
        --min-members 3 --min-epochs 1,2 --seeds 0,1,2,3,4 --out /tmp/es-runs.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from nas.errors import NasError
from nas.files import read_results, write_json_atomic
from nas.search.api import Search
from nas.search.events import SilentMonitor
from nas.search.settings import SearchSettings
from nas.study.record import TrialRecord
from nas.study.stats import hypervolume, is_stopped
from nas.units import parse_count


def front(trials: list[FrozenTrial], cost: str) -> list[FrozenTrial]:
    """Trained-to-the-end trials that no other beats on both (accuracy, cost)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE]

    def beats(a: FrozenTrial, b: FrozenTrial) -> bool:
        ax, ac = a.values[0], TrialRecord(a).value(cost) or 0.0
        bx, bc = b.values[0], TrialRecord(b).value(cost) or 0.0
        return bool(ax >= bx and ac <= bc and (ax > bx or ac < bc))

    return [t for t in done if not any(beats(o, t) for o in done if o is not t)]


def run(settings: SearchSettings, cost: str, limit: float) -> dict[str, Any]:
    start = time.perf_counter()
    outcome = Search(settings=settings).outcome(SilentMonitor(), lambda text: None)
    wall = time.perf_counter() - start
    if outcome.interrupted:  # never keep (or resume from) a run that did not finish
        raise SystemExit("interrupted: finished runs are kept in --out, the same command resumes")
    trials = outcome.stats.trials
    trained = [t for t in trials if t.user_attrs.get("curve")]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    f = front(trials, cost)
    return {
        "proxy_seconds": round(sum(t.user_attrs.get("seconds", 0.0) for t in trained), 1),
        "wall_seconds": round(wall, 1),
        "epochs": sum(len(t.user_attrs["curve"]) for t in trained),
        "trained": len(trained),
        "stopped": sum(map(is_stopped, trials)),
        "stopped_at": sorted(t.user_attrs["stopped_at_epoch"] for t in trials if is_stopped(t)),
        "best_accuracy": max((t.values[0] for t in complete), default=None),
        "hypervolume": round(hypervolume([(t.values[0], t.user_attrs[cost]) for t in f], limit), 4),
        "front": sorted(t.number for t in f),
        "best_trial": max(complete, key=lambda t: t.values[0]).number if complete else None,
        "stopped_trials": sorted(t.number for t in trials if is_stopped(t)),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _resumed(out: Path | None, settings: dict[str, Any]) -> dict[int, dict[str, dict[str, Any]]]:
    """Earlier runs of these settings (their seeds and arms are kept); of others, refused."""
    try:
        kept = read_results(out, settings) if out else None
    except NasError as exc:
        raise SystemExit(str(exc)) from None
    return {int(seed): runs for seed, runs in kept["per_seed"].items()} if kept else {}


def main() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help="image folder (DIR/train, DIR/test)")
    parser.add_argument("--space", default="search_spaces/small_cifar.toml")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--proxy-epochs", type=int, default=4)
    parser.add_argument("--proxy-subset", type=int, default=1000)
    parser.add_argument("--proxy-val", type=int, default=500)
    parser.add_argument("--param-limit", default="150k")
    parser.add_argument("--eta", default="2", help="comma-separated: one arm per value")
    parser.add_argument(
        "--min-epochs", default="1", help="comma-separated: one arm per value (and eta, m)"
    )
    parser.add_argument(
        "--min-members", default="3", help="comma-separated: one arm per value (and eta)"
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated sampler/data seeds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON file that keeps every finished run; an interrupted benchmark resumes from it",
    )
    args = parser.parse_args()
    cost = "params"
    limit = float(parse_count(args.param_limit))
    etas = [float(e) for e in args.eta.split(",")]
    members = [int(m) for m in args.min_members.split(",")]
    firsts = [int(e) for e in args.min_epochs.split(",")]
    arms = [
        "off",
        *(f"sha eta={e:g} m={m} e={f}" for e in etas for m in members for f in firsts),
    ]
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = {
        "space": args.space,
        "trials": args.trials,
        "proxy_epochs": args.proxy_epochs,
        "proxy_subset": args.proxy_subset,
        "proxy_val": args.proxy_val,
        "param_limit": args.param_limit,
        "objectives": "accuracy,params",
        "device": args.device,
        "hypervolume_reference": f"accuracy 0, {cost} = the limit ({args.param_limit})",
    }
    per_seed = _resumed(args.out, settings)
    with tempfile.TemporaryDirectory() as tmp:
        for n, seed in enumerate(seeds):
            order = arms[n % len(arms) :] + arms[: n % len(arms)]  # interleave the arms
            per_seed.setdefault(seed, {})
            for arm in order:
                if arm in per_seed[seed]:
                    continue
                knobs = dict(kv.split("=") for kv in arm.split()[1:])
                eta = float(knobs.get("eta", 2.0))
                study = f"s{seed}-{arm.replace(' ', '-').replace('=', '')}"
                search = SearchSettings(
                    space=args.space,
                    dataset="imagefolder",
                    data_dir=args.data_dir,
                    limits={"params": parse_count(args.param_limit)},
                    trials=args.trials,
                    sampler="random",
                    proxy_epochs=args.proxy_epochs,
                    proxy_subset=args.proxy_subset,
                    proxy_val=args.proxy_val,
                    storage=f"sqlite:///{Path(tmp)}/{study}.db",
                    study=study,
                    seed=seed,
                    device=args.device,
                    early_stopping="off" if arm == "off" else "sha",
                    eta=eta,
                    min_epochs=int(knobs.get("e", 1)),
                    min_members=int(knobs.get("m", 1)),
                    quiet=True,
                )
                per_seed[seed][arm] = run(search, cost, limit)
                if args.out:
                    write_json_atomic(args.out, {"settings": settings, "per_seed": per_seed})
                if not args.json:
                    r = per_seed[seed][arm]
                    print(
                        f"seed {seed} {arm:>20}: proxy {r['proxy_seconds']:7.1f}s  "
                        f"epochs {r['epochs']:3d}  stopped {r['stopped']:2d}  best "
                        f"{r['best_accuracy']:.4f}  HV {r['hypervolume']:.4f}",
                        flush=True,
                    )
    summary: dict[str, Any] = {}
    for arm in arms:
        rows = [per_seed[s][arm] for s in seeds]
        summary[arm] = {
            k: spread([float(r[k]) for r in rows])
            for k in ("proxy_seconds", "wall_seconds", "epochs", "stopped", "best_accuracy")
        }
        summary[arm]["hypervolume"] = spread([r["hypervolume"] for r in rows])
        if arm != "off":
            saved = [
                1 - per_seed[s][arm]["proxy_seconds"] / per_seed[s]["off"]["proxy_seconds"]
                for s in seeds
            ]
            summary[arm]["proxy_time_saved"] = spread([round(x, 3) for x in saved])
            work = [1 - per_seed[s][arm]["epochs"] / per_seed[s]["off"]["epochs"] for s in seeds]
            summary[arm]["epochs_saved"] = spread([round(x, 3) for x in work])
            summary[arm]["front_members_lost"] = [
                len(set(per_seed[s]["off"]["front"]) & set(per_seed[s][arm]["stopped_trials"]))
                for s in seeds
            ]
            summary[arm]["best_lost"] = [
                per_seed[s]["off"]["best_trial"] in per_seed[s][arm]["stopped_trials"]
                for s in seeds
            ]
    result = {
        "settings": {**settings, "min_epochs": firsts, "min_members": members, "seeds": seeds},
        "per_seed": per_seed,
        "summary": summary,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print()
    header = f"{'arm':>20} | {'proxy s (min/med/max)':>24} | {'epochs':>13} | {'stopped':>10}"
    header += f" | {'best acc':>20} | {'hypervolume':>20} | saved (median) | epochs saved"
    header += " | front lost"
    header += " | best lost"
    print(header)
    for arm in arms:
        s = summary[arm]

        def mmm(key: str, fmt: str, s: dict[str, Any] = s) -> str:
            return "/".join(format(s[key][k], fmt) for k in ("min", "median", "max"))

        saved_text = f"{100 * s['proxy_time_saved']['median']:.1f}%" if arm != "off" else "-"
        work_text = f"{100 * s['epochs_saved']['median']:.1f}%" if arm != "off" else "-"
        lost_text = ",".join(map(str, s.get("front_members_lost", []))) or "-"
        best_text = ",".join("yes" if b else "no" for b in s.get("best_lost", [])) or "-"
        print(
            f"{arm:>20} | {mmm('proxy_seconds', '.0f'):>24} | {mmm('epochs', '.0f'):>13} | "
            f"{mmm('stopped', '.0f'):>10} | {mmm('best_accuracy', '.3f'):>20} | "
            f"{mmm('hypervolume', '.3f'):>20} | {saved_text:>14} | {work_text:>12} | "
            f"{lost_text:>10} | {best_text}"
        )


if __name__ == "__main__":
    main()
