"""``nas fidelity``: measure how well proxy fidelities and zero-cost scores rank candidates."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from typing import Any

from rich.markup import escape

from nas.cli.arch import limit_arg
from nas.cli.main import COMMANDS, Command, argtype
from nas.cli.output import console, print_json, table
from nas.cli.search import add_data_args, add_study_args, raise_interrupt
from nas.errors import NasError
from nas.fidelity.ladder import Rung, parse_ladder


def _args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("panel and ladder")
    g.add_argument(
        "--space",
        default="search_spaces/small_cifar.toml",
        metavar="FILE",
        help="search space the panel is drawn from (default search_spaces/small_cifar.toml)",
    )
    g.add_argument(
        "--param-limit", type=limit_arg, default="5M", metavar="N", help="panel limit (5M)"
    )
    g.add_argument("--panel", type=int, default=12, metavar="N", help="candidates (12)")
    g.add_argument(
        "--ladder",
        type=argtype(parse_ladder, "ladder"),
        default="1x2000,3x5000,5x10000",
        metavar="RUNGS",
        help="proxy fidelities to rank, EPOCHSxIMAGES[:RECIPE], comma-separated "
        "(1x2000,3x5000,5x10000); a rung with ':fast' trains with the 'fast' proxy recipe, "
        "so 3x5000,3x5000:fast compares the two recipes on one panel",
    )
    g.add_argument(
        "--reference",
        type=argtype(Rung.parse, "rung"),
        default="30xall",
        metavar="RUNG",
        help="the fidelity every rung is compared with (30xall: 30 epochs on every "
        "training image outside the validation split)",
    )
    g.add_argument(
        "--val", type=int, default=2000, metavar="N", help="validation images, every rung (2000)"
    )
    g.add_argument(
        "--proxy-lr",
        type=float,
        default=0.8,
        metavar="LR",
        help="peak rate for 256 images per step, scaled to each rung's batch (0.8)",
    )
    g.add_argument(
        "--target-tau",
        type=float,
        default=0.6,
        metavar="T",
        help="the cheapest rung whose Kendall tau reaches T is recommended (0.6)",
    )
    g.add_argument("--seed", type=int, default=0, metavar="S", help="panel and data seed (0)")
    g.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="processes on this machine sharing the jobs (1); on CUDA each gets GPU k mod "
        "the GPU count; more machines join by running the same command with the same "
        "--storage and --study",
    )
    g.add_argument("--json", action="store_true", help="print the result as JSON only")
    add_data_args(p)
    add_study_args(p)


def _fmt(value: float | None, spec: str = "+.2f") -> str:
    return "-" if value is None else format(value, spec)


def _print(result: dict[str, Any]) -> None:
    ref = result["reference"]
    rows = []
    for r in result["rungs"]:
        interval = (
            f"[{_fmt(r['tau_low'])}, {_fmt(r['tau_high'])}]" if r["tau_low"] is not None else "-"
        )
        share = "-" if r["cost_share"] is None else f"{100 * r['cost_share']:.1f}%"
        rows.append(
            [
                r["rung"],
                _fmt(r["kendall_tau"]),
                interval,
                _fmt(r["spearman"]),
                _fmt(r["mean_accuracy"], ".3f"),
                f"{r['seconds']:.0f}s",
                share,
                r["n"],
            ]
        )
    rows.append(
        [
            "reference " + ref["rung"],
            "",
            "",
            "",
            _fmt(ref["mean_accuracy"], ".3f"),
            f"{ref['seconds']:.0f}s",
            "100%",
            ref["trained"],
        ]
    )
    console.print(
        table(
            f"Proxy fidelity of {result['panel']} candidates against {ref['rung']}",
            [
                "rung",
                "Kendall tau",
                "90% interval",
                "Spearman",
                "mean val acc",
                "time",
                "cost",
                "n",
            ],
            rows,
            right=(1, 2, 3, 4, 5, 6, 7),
        )
    )
    zc_rows = [
        [
            name,
            _fmt(a["kendall_tau"]),
            f"[{_fmt(a['tau_low'])}, {_fmt(a['tau_high'])}]" if a["tau_low"] is not None else "-",
            _fmt(a["spearman"]),
        ]
        for name, a in sorted(
            result["zero_cost"].items(), key=lambda kv: -(kv[1]["kendall_tau"] or -2)
        )
    ]
    if zc_rows:
        console.print(
            table(
                "Zero-cost scores of the untrained candidates against the reference",
                ["score", "Kendall tau", "90% interval", "Spearman"],
                zc_rows,
                right=(1, 2, 3),
            )
        )
    if result["recommended"]:
        console.print(
            f"recommended: {result['recommended']}, the cheapest rung with Kendall tau >= "
            f"{result['target_tau']}; in a study file:\n{escape(result['study_file'])}"
        )
    else:
        console.print(
            f"no rung reaches Kendall tau >= {result['target_tau']}: train longer rungs, or "
            "use the rung with the best tau per unit of cost"
        )


def _start_helpers(k: int, device_type: str, command: list[str]) -> list[subprocess.Popen[bytes]]:
    """Start ``k`` more processes of this very command (with ``--workers 1``), each sharing
    the study's jobs; on CUDA, helper i sees GPU (i + 1) mod the GPU count."""
    if k <= 0:
        return []
    import torch

    argv = list(command)
    if "--workers" in argv:
        i = argv.index("--workers")
        del argv[i : i + 2]
    argv = [a for a in argv if not a.startswith("--workers=") and a != "--json"]
    gpus = torch.cuda.device_count() if device_type == "cuda" else 0
    helpers = []
    for i in range(k):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str((i + 1) % gpus)
        helpers.append(
            subprocess.Popen(
                [sys.executable, "-m", "nas", *argv, "--workers", "1"],
                env=env,
                stdout=subprocess.DEVNULL,
            )
        )
    return helpers


def _run(args: argparse.Namespace) -> int:
    from nas.fidelity.panel import FidelityRun, FidelitySettings

    settings = FidelitySettings(
        space=args.space,
        dataset=args.dataset or "cifar10",
        data_dir=args.data_dir,
        param_limit=args.param_limit,
        panel=args.panel,
        ladder=args.ladder,
        reference=args.reference,
        val=args.val,
        proxy_lr=args.proxy_lr,
        seed=args.seed,
        device=args.device or "auto",
        storage=args.storage,
        study=args.study,
        target_tau=args.target_tau,
    )

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.workers < 1:
        raise NasError("--workers must be at least 1")
    signal.signal(signal.SIGTERM, raise_interrupt)
    run = FidelityRun(settings, say)
    run.panel()  # created once, before the other workers start
    helpers = _start_helpers(args.workers - 1, run.device.type, args.argv)
    say(
        f"fidelity study {settings.study_name!r}: {settings.panel} candidates x "
        f"{len(settings.rungs)} fidelities ({', '.join(r.label for r in settings.rungs)}) on "
        f"{run.device}; interrupted, the same command resumes"
    )
    try:
        run.work()
    finally:
        for proc in helpers:
            if proc.poll() is None and sys.exc_info()[0] is not None:
                proc.terminate()
            proc.wait()
    result = run.summary()
    if args.json:
        print_json(result)
    else:
        _print(result)
    return 0


COMMANDS.add(
    "fidelity",
    Command(
        name="fidelity",
        help="measure how well cheap proxies and zero-cost scores rank like full training",
        description=(
            "Sample a panel of distinct candidates that fit the limit, train each at every\n"
            "rung of a ladder of proxy fidelities (EPOCHSxIMAGES) and at a reference fidelity,\n"
            "all scored on the same validation split, and report per rung Kendall's tau and\n"
            "Spearman's rho against the reference ranking (with a bootstrap 90% interval over\n"
            "candidates) and its cost as a share of the reference's. Zero-cost scores of the\n"
            "untrained candidates (params, FLOPs, synflow, NASWOT, grad_norm) are compared\n"
            "too. The cheapest rung whose tau reaches --target-tau is recommended, with the\n"
            "study-file lines that use it. Results live in a study database: an interrupted\n"
            "run resumes, and several processes (or machines, on PostgreSQL) given the same\n"
            "--storage and --study share the jobs."
        ),
        examples=(
            "  nas fidelity --dataset imagefolder --data-dir /tmp/cifar10 --panel 12 \\\n"
            "      --ladder 1x1000,2x2000,4x4000 --reference 8x10000 --device cpu\n"
            "  nas fidelity --dataset cifar10 --storage postgresql+psycopg://nas@db/nas "
            "--study fid --json\n"
        ),
        add_arguments=_args,
        run=_run,
    ),
)
