"""``nas search``: run or continue a study."""

from __future__ import annotations

import argparse
import signal
from typing import TYPE_CHECKING, Any

from nas.cli.arch import flops_arg, limit_arg
from nas.cli.main import COMMANDS, Command
from nas.cli.output import console, fmt_int, table
from nas.data.catalog import DATASETS
from nas.search.settings import (
    EARLY_STOPPING,
    OBJECTIVE_SETS,
    SAMPLERS,
    SearchSettings,
    load_study_file,
    merge,
)
from nas.training.recipe import PROXY_RECIPES
from nas.units import human

if TYPE_CHECKING:
    from nas.search.runner import SearchOutcome

DEFAULTS = SearchSettings()


def _subset(text: str) -> int | str:
    if text.lower() == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of images or 'all', got {text!r}"
        ) from None


def add_data_args(p: argparse.ArgumentParser) -> None:
    """--dataset, --data-dir, --device (shared with train-winners)."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        choices=DATASETS.names(),
        default=None,
        help=f"data set (default {DEFAULTS.dataset}); 'fake' is for smoke tests only",
    )
    g.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="where torchvision data sets download to, or the image folder "
        "(DIR/train/<class>/*, DIR/test/<class>/*); default: a user cache folder",
    )
    g.add_argument(
        "--device",
        default=None,
        metavar="{auto,cpu,cuda}",
        help="where to train (default auto: CUDA if available)",
    )


def add_study_args(p: argparse.ArgumentParser, *, study: str = "optional") -> None:
    """--storage and --study, for every command that reads or writes a study.

    Args:
        study: ``optional`` (nas search derives a name), ``required``, or ``none``.
    """
    g = p.add_argument_group("study")
    g.add_argument(
        "--storage",
        metavar="URL",
        default=None,
        help="SQLAlchemy URL of the study database (default: "
        "sqlite:///studies/STUDY.db; postgresql+psycopg://... for many workers)",
    )
    if study == "required":
        g.add_argument("--study", metavar="NAME", required=True, help="study name")
    elif study == "optional":
        g.add_argument(
            "--study",
            metavar="NAME",
            default=None,
            help="study name (default: derived from space, data set and limit)",
        )


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "study_file",
        nargs="?",
        metavar="STUDY_FILE",
        help="a study TOML with a [search] table (flags given here win over it)",
    )
    g = p.add_argument_group("search")
    g.add_argument(
        "--space",
        metavar="FILE",
        default=None,
        help=f"search-space TOML (default {DEFAULTS.space})",
    )
    g.add_argument(
        "--param-limit",
        type=limit_arg,
        metavar="LIMIT",
        default=None,
        help="hard parameter limit: 5M, 4.5e6, 500k ... (default 5M)",
    )
    g.add_argument(
        "--flops-limit",
        type=flops_arg,
        metavar="LIMIT",
        default=None,
        help="hard FLOPs limit per image (1 multiply-add = 1 flop): 500M, 2G ... (default "
        "none); over it a candidate is rejected before training, like the parameter limit, "
        "and the sampler learns it",
    )
    g.add_argument(
        "--trials",
        type=int,
        metavar="N",
        default=None,
        help=f"trained trials the study should have in all (default {DEFAULTS.trials});"
        " rejected candidates do not count",
    )
    g.add_argument(
        "--objectives",
        choices=list(OBJECTIVE_SETS),
        default=None,
        metavar="OBJ",
        help="what to optimise: " + ", ".join(OBJECTIVE_SETS) + " (default accuracy,params)",
    )
    g.add_argument(
        "--sampler",
        choices=SAMPLERS.names(),
        default=None,
        help="Optuna sampler (default tpe): tpe (multivariate, learns the limit from "
        "rejections), nsga2 (population a quarter of --trials, 4..50; rejected candidates "
        "count as infeasible members of their generation), random",
    )
    g.add_argument("--seed", type=int, metavar="S", default=None, help="seed (default 0)")
    g.add_argument(
        "--timeout",
        type=float,
        metavar="SEC",
        default=None,
        help="stop starting new trials after SEC seconds",
    )
    g.add_argument(
        "--enqueue-presets",
        action="store_const",
        const=True,
        default=None,
        help="start with the seed presets that fit the limit",
    )
    es = p.add_argument_group(
        "early stopping",
        "Asynchronous successive halving, multi-objective aware: after epochs m, m*eta, "
        "m*eta^2, ... (below --proxy-epochs) a proxy goes on only if no trial of no higher "
        "cost (the second objective) beat it at that epoch, or it is in the top 1/eta of the "
        "trials that got there; so a trial is never stopped by a costlier one. Works across "
        "workers and machines; each stopped trial records its epoch and why.",
    )
    es.add_argument(
        "--early-stopping",
        choices=EARLY_STOPPING,
        default=None,
        help=f"'sha' or 'off' (default {DEFAULTS.early_stopping})",
    )
    es.add_argument(
        "--no-early-stopping",
        dest="early_stopping",
        action="store_const",
        const="off",
        help="the same as --early-stopping off: train every candidate to the end",
    )
    es.add_argument(
        "--eta",
        type=float,
        default=None,
        help=f"keep the top 1/eta at each rung; rungs eta times apart (default {DEFAULTS.eta:g})",
    )
    es.add_argument(
        "--min-epochs",
        type=int,
        metavar="M",
        default=None,
        help=f"epochs before the first decision (default {DEFAULTS.min_epochs})",
    )
    g.add_argument(
        "--quiet",
        action="store_const",
        const=True,
        default=None,
        help="plain log lines instead of the live table",
    )
    g.add_argument(
        "--workers",
        type=int,
        metavar="K",
        default=None,
        help="local worker processes sharing the study (default 1), spread over the GPUs "
        "round-robin: each gets CUDA_VISIBLE_DEVICES set to its one GPU (taken from yours if "
        "set), so K above the GPU count puts several on one GPU; for many machines, run nas "
        "search on each with one --storage postgresql+psycopg:// URL",
    )
    g.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    g.add_argument(
        "--grace-period",
        type=int,
        metavar="SEC",
        default=None,
        help="seconds without heartbeat before a worker's trial is failed "
        f"(default {DEFAULTS.grace_period})",
    )
    g.add_argument(
        "--db-retry",
        type=float,
        metavar="SEC",
        default=None,
        help="when the study database goes away (a restart, a network blip), retry with "
        f"backoff for up to SEC seconds while training goes on (default {DEFAULTS.db_retry:g}); "
        "past that, exit with one line and leave the trial to the heartbeat recovery",
    )
    pr = p.add_argument_group("proxy training")
    pr.add_argument(
        "--proxy-epochs",
        type=int,
        metavar="E",
        default=None,
        help=f"epochs per candidate (default {DEFAULTS.proxy_epochs})",
    )
    pr.add_argument(
        "--proxy-subset",
        type=_subset,
        metavar="N",
        default=None,
        help=f"training images per candidate, or 'all' (default {DEFAULTS.proxy_subset})",
    )
    pr.add_argument(
        "--proxy-val",
        type=_subset,
        metavar="N",
        default=None,
        help=f"validation images scored per epoch, or 'all' (default {DEFAULTS.proxy_val})",
    )
    pr.add_argument(
        "--proxy-batch-size",
        type=int,
        metavar="B",
        default=None,
        help="images per step (default: about 60 steps per epoch, 32..256)",
    )
    pr.add_argument(
        "--proxy-lr",
        type=float,
        metavar="LR",
        default=None,
        help=f"peak learning rate for a batch of 256 images (default {DEFAULTS.proxy_lr}); "
        "scaled linearly with the batch size (Goyal et al. 2017): at batch B the rate is "
        "LR * B / 256, e.g. 0.2 at the default batch of 64",
    )
    pr.add_argument(
        "--proxy-recipe",
        choices=PROXY_RECIPES.names(),
        default=None,
        help=f"how proxies train (default {DEFAULTS.proxy_recipe}): 'standard' crops after "
        "padding by 4, flips, label smoothing 0.1; 'fast' adds airbench's label smoothing "
        "0.2, padding 2 and flip test-time augmentation. Compare them with nas fidelity "
        "--ladder 3x5000,3x5000:fast",
    )
    add_data_args(p)
    add_study_args(p)


CLI_FIELDS = (
    "space",
    "dataset",
    "data_dir",
    "param_limit",
    "flops_limit",
    "trials",
    "objectives",
    "sampler",
    "proxy_epochs",
    "proxy_subset",
    "proxy_val",
    "proxy_batch_size",
    "proxy_lr",
    "proxy_recipe",
    "storage",
    "study",
    "seed",
    "device",
    "timeout",
    "enqueue_presets",
    "early_stopping",
    "eta",
    "min_epochs",
    "quiet",
    "workers",
    "worker_index",
    "grace_period",
    "db_retry",
)


def settings_from_args(args: argparse.Namespace) -> SearchSettings:
    """Merge defaults, the study file and the flags given."""
    file_values = load_study_file(args.study_file) if args.study_file else {}
    cli: dict[str, Any] = {k: getattr(args, k, None) for k in CLI_FIELDS}
    if cli["objectives"]:
        cli["objectives"] = OBJECTIVE_SETS[cli["objectives"]]
    return merge(file_values, cli)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nas.search.events import LiveMonitor, LogMonitor, SearchMonitor
    from nas.search.runner import run_search

    settings = settings_from_args(args)
    signal.signal(signal.SIGTERM, raise_interrupt)
    if settings.workers > 1:
        from nas.search.workers import run_workers

        outcome, code = run_workers(settings)
        print_summary(outcome, settings)
        return code
    err = Console(stderr=True)
    monitor: SearchMonitor = (
        LogMonitor() if settings.quiet or not err.is_terminal else LiveMonitor(err)
    )
    outcome = run_search(settings, monitor, worker=settings.worker_index)
    print_summary(outcome, settings)
    return 130 if outcome.interrupted else 0


def raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a pre-empted machine, a stopped container) ends like Ctrl-C."""
    raise KeyboardInterrupt


def print_summary(outcome: SearchOutcome, settings: SearchSettings) -> None:
    """End-of-search summary: totals, rejection rates, the Pareto front."""
    from nas.config import ArchConfig
    from nas.search.stats import accuracy_of, fidelity_text, proxy_fidelity, second_objective

    s = outcome.stats
    second = second_objective(outcome.study)
    console.print(
        f"\n[bold]study {outcome.study.study_name}[/]: {outcome.stop_reason} "
        f"({outcome.seconds:.0f}s, {outcome.trained_now} trained in this run)"
    )
    console.print(
        f"trained {s.trained} (complete {s.complete}, stopped early {s.stopped}), "
        f"rejected {s.rejected}, failed {s.failed}, running {s.running}"
    )
    if s.rejection_first_third is not None and s.rejection_last_third is not None:
        console.print(
            f"rejection rate: first third of trials {100 * s.rejection_first_third:.0f}%"
            f", last third {100 * s.rejection_last_third:.0f}%"
        )
    if s.pareto:
        rows = []
        for t in s.pareto:
            arch = t.user_attrs.get("arch", {})
            summary = ArchConfig.from_dict(arch).summary() if arch else "?"
            rows.append(
                [
                    t.number,
                    f"{accuracy_of(t):.4f}",
                    fmt_int(t.user_attrs.get("params")),
                    human(t.user_attrs.get("flops", 0)),
                    f"{t.user_attrs.get('seconds', 0):.0f}s",
                    summary,
                ]
            )
        console.print(
            table(
                f"Pareto front (val accuracy vs {second})",
                ["trial", "val acc", "params", "FLOPs", "time", "architecture"],
                rows,
                right=(0, 1, 2, 3, 4),
            )
        )
    else:
        console.print("no trial has finished yet")
    fidelity = proxy_fidelity(s.trials)
    if fidelity["n"]:
        console.print(
            "proxy fidelity (proxy vs full validation accuracy of the fully trained winners): "
            + fidelity_text(fidelity)
        )
    if s.best is not None:
        console.print(
            f"best: trial {s.best.number}, val acc {accuracy_of(s.best):.4f}; "
            f"next: nas train-winners --storage {settings.storage_url} "
            f"--study {outcome.study.study_name} --top-k 3"
        )


COMMANDS.add(
    "search",
    Command(
        name="search",
        help="search architectures: reject over-limit candidates, train proxies, keep the front",
        description=(
            "Sample architectures from a search space with Optuna. Each candidate is counted\n"
            "with fvcore before any weights exist: over the limit it is rejected in milliseconds\n"
            "(the trial ends PRUNED with user attribute 'rejected', and the sampler learns the\n"
            "boundary); otherwise it is trained as a short proxy and scored on a validation split\n"
            "carved from the training images. Hopeless proxies are stopped early. Re-running the\n"
            "same command continues the study; --trials is the study-wide number of trained\n"
            "trials. Ctrl-C fails the running trial cleanly and prints the summary."
        ),
        examples=(
            "  nas search --dataset cifar10 --param-limit 5M --trials 50 --study c10-5m\n"
            "  nas search --dataset imagefolder --data-dir /tmp/cifar10 --param-limit 5M \\\n"
            "      --proxy-epochs 1 --proxy-subset 2000 --trials 4 --storage sqlite:///s.db \\\n"
            "      --study demo --seed 0 --device cpu\n"
            "  nas search studies/cifar10_5m.toml --trials 100      # settings from a file\n"
            "  nas search --objectives accuracy,flops --sampler nsga2 --enqueue-presets\n"
            "  nas search --param-limit 5M --flops-limit 500M   # a budget for both\n"
            "  nas search --dataset fake --trials 2 --proxy-epochs 1   # smoke test, no data\n"
        ),
        add_arguments=_args,
        run=_run,
    ),
)
