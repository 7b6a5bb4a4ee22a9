"""``nas fidelity``: measure how well proxy fidelities and zero-cost scores rank candidates."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from nas.cli.common import SHOW_SETTINGS_HELP, raise_interrupt, show_settings
from nas.cli.main import COMMANDS, Command
from nas.cli.output import console, print_json, table
from nas.errors import NasError
from nas.fidelity.settings import GROUPS, RECORD_KEY, FidelitySettings
from nas.settings import add_flags, flags_given
from nas.units import plural

if TYPE_CHECKING:
    from nas.settings import SettingsSource
    from nas.training.placement import Placement


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--show-settings", action="store_true", help=SHOW_SETTINGS_HELP)
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    add_flags(p, FidelitySettings, groups=GROUPS)


def _fmt(value: float | None, spec: str = "+.2f") -> str:
    return "-" if value is None else format(value, spec)


def _with_interval(value: float | None, low: float | None, high: float | None) -> str:
    """``+0.64 [+0.22, +0.86]``; ``-`` where undefined."""
    if value is None:
        return "-"
    return (
        _fmt(value) if low is None or high is None else f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"
    )


def _agreement_cells(a: dict[str, Any]) -> list[str]:
    """Kendall tau [90%], same-size tau [90%] (pairs), Spearman."""
    same = _with_interval(a["same_size_tau"], a["same_size_low"], a["same_size_high"])
    if a["same_size_pairs"] is not None:
        same += f" ({a['same_size_pairs']})"
    return [
        _with_interval(a["kendall_tau"], a["tau_low"], a["tau_high"]),
        same,
        _fmt(a["spearman"]),
    ]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


#: The columns of the fidelity tables after the first (the rung or the score).
COLUMNS = [
    "Kendall tau [90%]",
    "same-size tau [90%] (pairs)",
    "Spearman",
    "mean val acc",
    "work share",
    "time",
    "n (trained/failed)",
]
RIGHT = tuple(range(1, len(COLUMNS) + 1))


def _rung_rows(r: dict[str, Any]) -> list[list[Any]]:
    """A rung's row, then one per earlier epoch, indented."""
    rows = [
        [
            r["rung"] if r["complete"] else f"{r['rung']} (incomplete)",
            *_agreement_cells(r),
            _fmt(r["mean_accuracy"], ".3f"),
            _share(r["cost_share"]),
            f"{r['seconds']:.0f}s",
            f"{r['n']} ({r['trained']}/{r['failed']})",
        ]
    ]
    for p in r["partial"]:
        rows.append(
            [
                f"  after epoch {p['at_epoch']}",
                *_agreement_cells(p),
                _fmt(p["mean_accuracy"], ".3f"),
                _share(p["cost_share"]),
                "",
                str(p["n"]),
            ]
        )
    return rows


def _reference_row(ref: dict[str, Any]) -> list[Any]:
    trained, failed = ref["trained"], ref["failed"]
    return [
        f"reference {ref['rung']}" + ("" if ref["complete"] else " (incomplete)"),
        "",
        "",
        "",
        _fmt(ref["mean_accuracy"], ".3f"),
        "100%",
        f"{ref['seconds']:.0f}s",
        f"{trained + failed} ({trained}/{failed})",
    ]


def _print(result: dict[str, Any]) -> None:
    """The tables of ``nas fidelity``: each rung (its early epochs indented under it) and
    each zero-cost score against the reference, then the recommendation or why there is none.
    """
    ref = result["reference"]
    rows = [row for r in result["rungs"] for row in _rung_rows(r)] + [_reference_row(ref)]
    title = (
        f"Proxy fidelity of {result['panel']} candidates against {ref['rung']} (same size: "
        f"within {result['same_size_factor']:g}x in parameters; work: training images seen)"
    )
    console.print(table(title, ["rung", *COLUMNS], rows, right=RIGHT))
    scores = sorted(result["zero_cost"].items(), key=lambda kv: -(kv[1]["kendall_tau"] or -2))
    zc_rows = [[name, *_agreement_cells(a), "-", "-", "-", str(a["n"])] for name, a in scores]
    if zc_rows:
        title = "Zero-cost scores of the untrained candidates against the reference"
        console.print(table(title, ["score", *COLUMNS], zc_rows, right=RIGHT))
    if result["recommended"]:
        console.print(
            f"recommended: {result['recommended']}, the cheapest complete rung whose Kendall "
            f"tau has a 90% lower bound >= {result['target_tau']}; in a study file:\n"
            f"{escape(result['study_file'])}"
        )
    else:
        console.print(escape(result["reason"]))


def _start_helpers(
    k: int, device: str, command: list[str]
) -> list[tuple[Placement, subprocess.Popen[bytes]]]:
    """Start ``k`` more processes of this very command (``--workers 1``), each sharing the
    study's jobs, placed on the GPUs as ``nas search --workers`` places its workers (this
    process takes the first placement)."""
    from nas.training.placement import assign_devices, worker_env

    if k <= 0:
        return []
    argv = list(command)
    if "--workers" in argv:
        i = argv.index("--workers")
        del argv[i : i + 2]
    argv = [a for a in argv if not a.startswith("--workers=") and a != "--json"]
    placements = assign_devices(device, k + 1)[1:]
    threads = max(1, (os.cpu_count() or 1) // (k + 1))
    return [
        (
            place,
            subprocess.Popen(
                [sys.executable, "-m", "nas", *argv, "--workers", "1", "--device", place.device],
                env=worker_env(place, threads, os.environ),
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C reaches them once, via this one
            ),
        )
        for place in placements
    ]


def _show(source: SettingsSource) -> int:
    from nas.fidelity.panel import fidelity_address

    show_settings(source, fidelity_address(source), "nas fidelity")
    return 0


def _run(args: argparse.Namespace) -> int:
    from nas.fidelity.panel import FidelityRun
    from nas.settings import SettingsSource

    source = SettingsSource(FidelitySettings, RECORD_KEY, flags_given(args, FidelitySettings))
    if args.show_settings:
        return _show(source)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, raise_interrupt)
    run = FidelityRun(source, say)
    s = run.settings
    if s.workers > 1:  # this process takes the first placement (the first GPU it sees)
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // s.workers))
    run.panel()  # created once, before the other workers start
    helpers = _start_helpers(s.workers - 1, s.device, args.argv)
    jobs = len(run.jobs())
    helping = plural(len(helpers), "helper process", "helper processes")
    say(
        f"fidelity study {run.address.name!r}: {plural(s.panel, 'candidate')} x "
        f"{plural(len(s.rungs), 'fidelity', 'fidelities')} "
        f"({', '.join(r.label for r in s.rungs)}), {plural(jobs, 'job')} on {run.device}"
        f"{f' and {helping}' if helpers else ''}; stop it any time, the same command resumes "
        "where it stopped"
    )
    stopped = True  # by an exception: Ctrl-C, SIGTERM or an error
    try:
        run.work()
        stopped = False
    finally:
        for _, proc in helpers:
            if proc.poll() is None and stopped:
                proc.send_signal(signal.SIGINT)  # as if the user had pressed Ctrl-C there
            proc.wait()
        if stopped and isinstance(sys.exc_info()[1], KeyboardInterrupt):
            done, total = run.progress()
            say(
                f"interrupted: {done} of {plural(total, 'job')} done; the running "
                f"{'jobs go' if helpers else 'job goes'} back to the pool, and the same "
                "command resumes the rest"
            )
    failed = [(place, p.returncode) for place, p in helpers if p.returncode != 0]
    if failed:
        raise NasError(
            f"{plural(len(failed), 'helper process', 'helper processes')} failed: "
            + ", ".join(f"{place.label} exit code {code}" for place, code in failed)
            + "; their jobs stay open, and the same command resumes them"
        )
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
            "Spearman's rho against the reference ranking, with a 90% interval (Fieller), and\n"
            "the same-size tau over pairs of candidates within 1.5x in parameters (what a\n"
            "Pareto search needs), with its bootstrap interval; failed candidates rank last.\n"
            "Zero-cost scores of the untrained candidates (params, FLOPs, synflow, NASWOT,\n"
            "grad_norm, ZiCo, MeCo) are compared too. The cheapest complete rung whose\n"
            "interval's lower bound reaches --target-tau is recommended, with the\n"
            "study-file lines that use it. Results live in a study database: an interrupted\n"
            "run resumes, and several processes (or machines, on PostgreSQL) given the same\n"
            "--storage and --study share the jobs."
        ),
        examples=(
            "  nas fidelity --space search_spaces/small_cifar.toml --param-limit 150k \\\n"
            "      --dataset imagefolder --data-dir /tmp/cifar10 --panel 5 --ladder 1x500 \\\n"
            "      --reference 2x1000 --val 500 --study fid-cpu --device cpu\n"
            "      # a smoke test on a CPU, ~40 s; 5 candidates rank almost nothing\n"
            "  nas fidelity --dataset imagefolder --data-dir /tmp/cifar10 --panel 12 \\\n"
            "      --ladder 1x1000,2x2000,4x4000 --reference 8x10000   # 1.2M images: a GPU\n"
            "  nas fidelity --dataset cifar10 --storage postgresql+psycopg://nas@db/nas "
            "--study fid --json\n"
        ),
        add_arguments=_args,
        run=_run,
    ),
)
