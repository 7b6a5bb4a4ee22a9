"""When does the search beat random? The search machinery on NAS-Bench-201 ground truth.

Each run is the product's own search (:func:`nas.search.loop.search_loop`: the sampler as
``nas search`` builds it from its registry entry, the start-up rule, the budget check and the
rejection path with constraint values, NSGA-II's generation bookkeeping, the trial records),
with training replaced by a table lookup (:mod:`benchmarks.tabular`): an evaluation sees one
training seed's validation accuracy, as a real training run would. Rejected candidates (over
the size limit: the median size of all cells, about half of them) do not count as
evaluations, as ``--trials`` does not count them.

Scores, lower is better: with one objective the simple regret (best feasible mean accuracy in
the table minus the mean accuracy of the cell the search hands over: the best mean observed
accuracy, a cell evaluated several times judged by its mean); with two objectives one minus
the hypervolume ratio (the hypervolume of the true values of the front the search found, over
that of the true feasible front). Each sampler is compared with random sampling seed by seed
(the same seeds see the same observations): the share of seeds where it does strictly better
and the two-sided Wilcoxon signed-rank p-value over the seeds where the two differ.

Noise levels (``--taus``): ``1.0`` observes the mean over training seeds (a perfect proxy);
``seed`` one training seed (the table's own noise); a number below that adds Gaussian noise
calibrated so that one observation ranks the feasible cells above the feasible median at that
Kendall's tau (:func:`benchmarks.tabular.calibrate`), which is how a weaker proxy looks; a
number with an ``f`` (``0.35f``) calibrates on every feasible cell instead, which is the pool
``nas fidelity`` measures a proxy on (a random panel of candidates that fit), so that a
proxy's measured tau reads directly against it. Both taus are printed for every level.

    python benchmarks/tabular_search.py                       # the default run (minutes)
    python benchmarks/tabular_search.py --taus seed --seeds 50 --budgets 100 --objectives accuracy
    python benchmarks/tabular_search.py --taus 1.0,0.8,0.6,0.45,0.3 --budgets 100

Writes ``--out`` (JSON: settings, calibration, every run, the summary) and an HTML page of
the anytime curves (median and interquartile range of the score against evaluations).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import warnings
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository's root holds `benchmarks`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.tabular import (
    CellSpace,
    Table,
    TableEvaluator,
    calibrate,
    compare,
    ensure_latency_metric,
    front_cells,
    handed_over,
    hypervolume_ratio,
    median_iqr,
    observed_tau,
    simple_regret,
    tau_cells,
)
from nas.files import write_json_atomic

OBJECTIVES = {
    "accuracy": ("accuracy",),
    "accuracy,size": ("accuracy", "params"),
    "accuracy,latency": ("accuracy", "latency"),
}
DEFAULT_OUT = Path("tabular_search.json")
COLUMNS = ("sampler", "budget", "median [IQR]".rjust(24), "beats random".rjust(22), "p".rjust(8))
HEADER = "  ".join((*COLUMNS, "rejected"))

_TABLE: Table | None = None


def _table(dataset: str) -> Table:
    global _TABLE
    if _TABLE is None:
        _TABLE = Table.nb201(dataset)
    return _TABLE


def noise_levels(table: Table, limit: float, taus: list[str]) -> dict[str, dict[str, Any]]:
    """Each noise level: its sigma, whether it observes the mean, the Kendall's tau one
    observation achieves on the calibration cells (``tau``), and the tau it achieves over
    every feasible cell (``tau_feasible``: what ``nas fidelity`` measures, on a panel drawn
    from every candidate that fits, so the figure to hold a proxy's measured tau against)."""
    cells = tau_cells(table, limit)
    feasible = np.flatnonzero(table.feasible(limit))
    out: dict[str, dict[str, Any]] = {}
    for name in taus:
        if name in ("1.0", "1"):
            out["1.0"] = {"sigma": 0.0, "exact": True, "tau": 1.0, "tau_feasible": 1.0}
            continue
        if name == "seed":
            sigma = 0.0
        elif name.endswith("f"):  # calibrated on every feasible cell, as nas fidelity's panel
            sigma = calibrate(table, limit, float(name[:-1]), cells=feasible)
        else:
            sigma = calibrate(table, limit, float(name))
        out[name] = {
            "sigma": sigma,
            "exact": False,
            "tau": observed_tau(table, cells, sigma),
            "tau_feasible": observed_tau(table, feasible, sigma),
        }
    return out


def register_gp() -> None:
    """Optuna's GPSampler as a sampler of this benchmark (not of the product: it models only
    COMPLETE trials, so it never learns from a rejection, which ends PRUNED)."""
    import optuna

    from nas.study.samplers import register_baseline

    register_baseline(
        "gp",
        "Optuna's GPSampler, 10 random start-up trials",
        lambda seed, trials, objectives: optuna.samplers.GPSampler(seed=seed, n_startup_trials=10),
    )


def register_local_variant(name: str) -> None:
    """``local@F``: the product's ``local`` sampler with a random start-up of a fraction F of
    the budget (at least 4) instead of a fifth, which is how its start-up was chosen."""
    import math

    from nas.study.local import LocalSearchSampler
    from nas.study.samplers import SAMPLERS, SamplerSpec, make_sampler

    share = float(name.split("@", 1)[1])

    def build(seed: int, trials: int, objectives: int) -> LocalSearchSampler:
        sampler = make_sampler("local", seed, trials, objectives)
        assert isinstance(sampler, LocalSearchSampler)
        sampler.n_init = max(4, math.floor(trials * share + 0.5))
        return sampler

    if name not in SAMPLERS:
        SAMPLERS.add(
            name,
            SamplerSpec(
                name,
                f"local, a random start-up of {share:g} of the budget",
                build,
                f"{share:g} of the budget",
                lambda record, finished: LocalSearchSampler.phase_of(record) or "startup",
                sized=True,
            ),
        )


def run(task: dict[str, Any]) -> dict[str, Any]:
    """One search (see the module doc); returns its score after each evaluation count in
    ``task["report"]`` and how many candidates it rejected."""
    import optuna

    from nas.search.events import SilentMonitor
    from nas.search.loop import search_loop
    from nas.search.settings import SearchSettings
    from nas.search.study import new_study
    from nas.study.record import TrialRecord
    from nas.study.samplers import make_sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    table = _table(task["dataset"])
    ensure_latency_metric()
    objectives = OBJECTIVES[task["objectives"]]
    limit = task["limit"]
    settings = SearchSettings(
        objectives=objectives,
        limits={"params": limit},
        sampler=task["sampler"],
        trials=task["budget"],
        early_stopping="off",
        seed=task["seed"],
    )
    study = new_study(settings)
    study.sampler = make_sampler(task["sampler"], task["seed"], task["budget"], len(objectives))
    evaluator = TableEvaluator(table, task["seed"], task["sigma"], task["exact"])
    search_loop(study, settings, CellSpace(table), evaluator, SilentMonitor(), _quiet).run(
        SilentMonitor()
    )
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    observed: list[tuple[int, float]] = []
    rejected = 0
    for t in trials:
        r = TrialRecord(t)
        if r.is_rejected:
            rejected += 1
        elif r.is_complete and r.arch is not None and r.accuracy is not None:
            observed.append((int(r.arch["cell"]), r.accuracy))
    marks = [b for b in task["report"] if b <= len(observed)]
    scores = {b: score(table, limit, objectives, observed[:b]) for b in marks}
    k = task.get("rerank", 0)
    reranked = {
        b: score(table, limit, objectives, rerank(table, task, observed[: b - k], k))
        for b in marks
        if k and b > k
    }
    return {
        **task,
        "scores": scores,
        "reranked": reranked,
        "rejected": rejected,
        "trials": len(trials),
    }


def rerank(
    table: Table, task: dict[str, Any], observed: list[tuple[int, float]], k: int
) -> list[tuple[int, float]]:
    """``observed`` and one more evaluation (the next training seed) of each of the ``k``
    finalists: the best ``k`` cells by mean observed accuracy (with two objectives, the
    observed front's most accurate ``k``), so the handover judges them by two observations."""
    sums: dict[int, list[float]] = {}
    for cell, accuracy in observed:
        sums.setdefault(cell, []).append(accuracy)
    means = {c: float(np.mean(v)) for c, v in sums.items()}
    pool = list(means)
    if OBJECTIVES[task["objectives"]][1:]:
        cost = table.size if task["objectives"] == "accuracy,size" else table.latency
        pool = front_cells({c: (m, float(cost[c])) for c, m in means.items()})
    finalists = sorted(pool, key=lambda c: -means[c])[:k]
    extra = [
        (c, table.observe(task["seed"], c, len(sums[c]), task["sigma"], task["exact"]))
        for c in finalists
    ]
    return observed + extra


def score(
    table: Table, limit: float, objectives: tuple[str, ...], observed: list[tuple[int, float]]
) -> float:
    """The run's score after ``observed`` (see the module doc; lower is better)."""
    if len(objectives) == 1:
        return simple_regret(table, limit, handed_over(observed))
    cost = table.size if objectives[1] == "params" else table.latency
    reference = limit if objectives[1] == "params" else float(cost[table.feasible(limit)].max())
    return 1.0 - hypervolume_ratio(table, limit, cost, reference, observed)


def _quiet(text: str) -> None:
    return None


def tasks(args: argparse.Namespace, limit: float, levels: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run: sampler x seed x noise x objectives, and per budget for a sampler built for
    its budget (NSGA-II's population, the local search's start-up); the others run once for
    the largest budget and are read after each budget's evaluations (and every 5, for the
    anytime curves)."""
    from nas.study.samplers import SAMPLERS

    budgets = sorted(args.budgets)
    out = []
    for objectives in args.objectives:
        for noise, level in levels.items():
            for sampler in args.samplers:
                runs = budgets if SAMPLERS[sampler].sized else [budgets[-1]]
                for budget in runs:
                    report = sorted(
                        {*(b for b in budgets if b <= budget), *range(5, budget + 1, 5)}
                    )
                    for seed in range(args.first_seed, args.first_seed + args.seeds):
                        out.append(
                            {
                                "dataset": args.dataset,
                                "objectives": objectives,
                                "noise": noise,
                                "sigma": level["sigma"],
                                "exact": level["exact"],
                                "sampler": sampler,
                                "seed": seed,
                                "budget": budget,
                                "limit": limit,
                                "report": report,
                                "rerank": args.rerank,
                            }
                        )
    return out


def summarize(results: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per objectives, noise, sampler and budget: median score with its interquartile range,
    the share of seeds where it beats random with the Wilcoxon p-value, the rejected share."""
    rows = []
    for objectives in args.objectives:
        for noise in dict.fromkeys(r["noise"] for r in results):  # in --taus order
            for budget in sorted(args.budgets):
                base = _scores(results, objectives, noise, "random", budget)
                arms = [(s, "scores") for s in args.samplers]
                if args.rerank:
                    arms += [(s, "reranked") for s in args.samplers]
                for sampler, which in arms:
                    ours = _scores(results, objectives, noise, sampler, budget, which)
                    if not ours:
                        continue
                    med, q1, q3 = median_iqr(list(ours.values()))
                    row = {
                        "objectives": objectives,
                        "noise": noise,
                        "sampler": sampler if which == "scores" else f"{sampler}+re{args.rerank}",
                        "budget": budget,
                        "median": med,
                        "q1": q1,
                        "q3": q3,
                        "rejected_share": _rejected_share(
                            results, objectives, noise, sampler, budget
                        ),
                    }
                    if (sampler, which) != ("random", "scores") and base:
                        seeds = sorted(set(ours) & set(base))
                        c = compare([ours[s] for s in seeds], [base[s] for s in seeds])
                        row.update(
                            wins=c.wins, ties=c.ties, losses=c.losses, share=c.share, p=c.p_value
                        )
                    rows.append(row)
    return rows


def _runs_for(
    results: list[dict[str, Any]], objectives: str, noise: str, sampler: str, budget: int
) -> list[dict[str, Any]]:
    """The runs that give a sampler's result at ``budget``: its own run for a sampler built
    for its budget, else the run of the largest budget."""
    from nas.study.samplers import SAMPLERS

    wanted = budget if SAMPLERS[sampler].sized else max(r["budget"] for r in results)
    return [
        r
        for r in results
        if (r["objectives"], r["noise"], r["sampler"], r["budget"])
        == (objectives, noise, sampler, wanted)
    ]


def _scores(
    results: list[dict[str, Any]],
    objectives: str,
    noise: str,
    sampler: str,
    budget: int,
    which: str = "scores",
) -> dict[int, float]:
    """Each seed's score of ``sampler`` after ``budget`` evaluations (``which``:
    ``scores``, or ``reranked``: its last evaluations spent re-evaluating finalists)."""
    return {
        r["seed"]: r[which][budget]
        for r in _runs_for(results, objectives, noise, sampler, budget)
        if budget in r[which]
    }


def _rejected_share(
    results: list[dict[str, Any]], objectives: str, noise: str, sampler: str, budget: int
) -> float:
    runs = _runs_for(results, objectives, noise, sampler, budget)
    return float(np.mean([r["rejected"] / max(1, r["trials"]) for r in runs])) if runs else 0.0


def rerank_savings(results: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """What re-ranking the finalists changes, paired by seed against the same run without
    it, at the largest budget: the median and mean score saved (positive: re-ranking did
    better), how many seeds it helped, left alone and hurt, and the Wilcoxon p-value. It
    costs ``--rerank`` of the budget's evaluations in both arms' terms."""
    budget = max(args.budgets)
    out = []
    for objectives in args.objectives:
        for noise in dict.fromkeys(r["noise"] for r in results):
            for sampler in args.samplers:
                plain = _scores(results, objectives, noise, sampler, budget)
                again = _scores(results, objectives, noise, sampler, budget, "reranked")
                seeds = sorted(set(plain) & set(again))
                if not seeds:
                    continue
                saved = [plain[s] - again[s] for s in seeds]
                c = compare([again[s] for s in seeds], [plain[s] for s in seeds])
                out.append(
                    {
                        "objectives": objectives,
                        "noise": noise,
                        "sampler": sampler,
                        "budget": budget,
                        "median_saved": float(np.median(saved)),
                        "mean_saved": float(np.mean(saved)),
                        "helped": c.wins,
                        "same": c.ties,
                        "hurt": c.losses,
                        "p": c.p_value,
                    }
                )
    return out


def print_rerank(rows: list[dict[str, Any]], k: int) -> None:
    """The re-ranking table (:func:`rerank_savings`)."""
    if not rows:
        return
    print(f"\nre-ranking the {k} finalists (their last {k} evaluations), against no re-ranking:")
    print("objectives     noise  sampler  median saved  mean saved  helped/same/hurt         p")
    for r in rows:
        p = f"{r['p']:.2g}" if r["p"] is not None else "-"
        print(
            f"{r['objectives']:<14} {r['noise']:>5} {r['sampler']:>8} {r['median_saved']:>+13.4f} "
            f"{r['mean_saved']:>+11.4f} {r['helped']:>7}/{r['same']}/{r['hurt']:<8} {p:>8}"
        )


def print_table(rows: list[dict[str, Any]], levels: dict[str, Any]) -> None:
    """The summary, one block per objectives and noise level."""
    for objectives in dict.fromkeys(r["objectives"] for r in rows):
        for noise in dict.fromkeys(r["noise"] for r in rows if r["objectives"] == objectives):
            level = levels[noise]
            what = "regret" if objectives == "accuracy" else "1 - HV ratio"
            print(
                f"\n{objectives}, noise {noise} (tau {level['tau']:.2f} on the feasible top "
                f"half, {level['tau_feasible']:.2f} on all feasible): median {what} [IQR]"
            )
            print(HEADER)
            for r in rows:
                if (r["objectives"], r["noise"]) != (objectives, noise):
                    continue
                iqr = f"{r['median']:.4f} [{r['q1']:.4f}, {r['q3']:.4f}]"
                beats = (
                    f"{100 * r['share']:.0f}% ({r['wins']}/{r['ties']}/{r['losses']})"
                    if "share" in r
                    else "-"
                )
                p = f"{r['p']:.2g}" if r.get("p") is not None else "-"
                print(
                    f"{r['sampler']:>8} {r['budget']:>6} {iqr:>24} {beats:>22} {p:>9} "
                    f"{100 * r['rejected_share']:>8.0f}%"
                )


def write_figure(results: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    """Anytime curves: median score (and the interquartile range) against evaluations, one
    panel per objectives and noise level, from the runs of the largest budget."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [(o, n) for o in args.objectives for n in dict.fromkeys(r["noise"] for r in results)]
    fig = make_subplots(
        rows=len(panels), cols=1, subplot_titles=[f"{o}, noise {n}" for o, n in panels]
    )
    colors = {"random": "#7f7f7f", "tpe": "#1f77b4", "nsga2": "#2ca02c", "local": "#d62728"}
    top = max(args.budgets)
    for row, (objectives, noise) in enumerate(panels, start=1):
        for sampler in args.samplers:
            runs = [
                r
                for r in results
                if (r["objectives"], r["noise"], r["sampler"], r["budget"])
                == (objectives, noise, sampler, top)
            ]
            if not runs:
                continue
            xs = sorted({k for r in runs for k in r["scores"]})
            stats = [median_iqr([r["scores"][x] for r in runs if x in r["scores"]]) for x in xs]
            color = colors.get(sampler, "#9467bd")
            fig.add_trace(
                go.Scatter(
                    x=xs + xs[::-1],
                    y=[s[2] for s in stats] + [s[1] for s in stats][::-1],
                    fill="toself",
                    fillcolor=color,
                    opacity=0.15,
                    line={"width": 0},
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=row,
                col=1,
            )
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[s[0] for s in stats],
                    mode="lines",
                    name=sampler,
                    line={"color": color},
                    legendgroup=sampler,
                    showlegend=row == 1,
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(
            title_text="regret" if objectives == "accuracy" else "1 - HV ratio", row=row, col=1
        )
        fig.update_xaxes(title_text="evaluations", row=row, col=1)
    fig.update_layout(
        height=360 * len(panels),
        title=f"NAS-Bench-201 {args.dataset}: median and IQR over {args.seeds} seeds",
        template="plotly_white",
    )
    fig.write_html(path, include_plotlyjs="cdn")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="cifar10", choices=("cifar10", "cifar100", "imagenet"))
    p.add_argument("--seeds", type=int, default=30, help="runs per sampler (30)")
    p.add_argument(
        "--first-seed", type=int, default=0, help="the first run's seed (0; others: held out)"
    )
    p.add_argument(
        "--samplers",
        default="random,tpe,nsga2,local",
        help="samplers of nas search, gp (Optuna's GPSampler) or local@F (local with a random "
        "start-up of a fraction F of the budget) (random,tpe,nsga2,local)",
    )
    p.add_argument("--budgets", default="25,50,100,200", help="evaluations (25,50,100,200)")
    p.add_argument(
        "--taus",
        default="1.0,0.45",
        help="noise levels: 1.0, seed, a tau on the feasible top half (0.45) or on every "
        "feasible cell (0.35f) (1.0,0.45)",
    )
    p.add_argument(
        "--objectives",
        default="accuracy,accuracy+size",
        help="objective sets, '+' within a set: accuracy, accuracy+size, accuracy+latency",
    )
    p.add_argument(
        "--rerank",
        type=int,
        default=0,
        help="also score each run with its last K evaluations spent re-evaluating its K "
        "finalists (another training seed each), handed over by the mean (0: no)",
    )
    p.add_argument("--workers", type=int, default=2, help="processes (2)")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="JSON results (tabular_search.json)"
    )
    args = p.parse_args(argv)
    args.samplers = args.samplers.split(",")
    args.budgets = [int(b) for b in args.budgets.split(",")]
    args.taus = args.taus.split(",")
    args.objectives = [o.replace("+", ",") for o in args.objectives.split(",")]
    unknown = [o for o in args.objectives if o not in OBJECTIVES]
    if unknown or "random" not in args.samplers:
        p.error(f"unknown objectives {unknown}" if unknown else "random is the baseline: keep it")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if "gp" in args.samplers:
        register_gp()
    for name in args.samplers:
        if name.startswith("local@"):
            register_local_variant(name)
    started = time.perf_counter()
    table = _table(args.dataset)
    limit = table.median_size()
    levels = noise_levels(table, limit, args.taus)
    todo = tasks(args, limit, levels)
    print(
        f"NAS-Bench-201 {args.dataset}: {len(table):,} cells, size limit {limit:,.0f} parameters "
        f"(median; {100 * (1 - table.feasible(limit).mean()):.0f}% over it); {len(todo)} runs on "
        f"{args.workers} processes",
        flush=True,
    )
    for name, level in levels.items():
        print(
            f"  noise {name}: sigma {level['sigma']:.4f}, Kendall's tau {level['tau']:.3f} on "
            f"the feasible cells above the median, {level['tau_feasible']:.3f} on all feasible"
        )
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        results = pool.map(run, todo, chunksize=4)
    rows = summarize(results, args)
    print_table(rows, levels)
    reranking = rerank_savings(results, args) if args.rerank else []
    print_rerank(reranking, args.rerank)
    seconds = time.perf_counter() - started
    print(f"\n{len(todo)} runs in {seconds:.0f} s on {args.workers} processes")
    doc = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "limit": limit,
        "noise": levels,
        "seconds": round(seconds, 1),
        "summary": rows,
        "rerank": reranking,
        "runs": results,
    }
    write_json_atomic(args.out, doc)
    write_figure(results, args, args.out.with_suffix(".html"))
    print(f"wrote {args.out} and {args.out.with_suffix('.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
