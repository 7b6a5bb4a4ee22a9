"""``nas presets``, ``nas count`` and ``nas sample``: what an architecture is and costs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.cli.main import COMMANDS, Command, argtype
from nas.cli.output import console, err_console, fmt_int, print_json, table
from nas.errors import NasError
from nas.objectives import METRICS, hardware
from nas.study.settings import StudySettings
from nas.units import human, parse_count, plural

if TYPE_CHECKING:
    from nas.config import ArchConfig
    from nas.counting import Counts
    from nas.sampling import SampleReport

DEFAULT_SPACE_PATH = "search_spaces/attention_resnet.toml"


def _positive_int(text: str) -> int:
    """An integer of at least 1 (a channel count, a side, a class count, processes)."""
    from nas.settings import parse_int

    value = parse_int(text)
    if value < 1:
        raise NasError(f"must be at least 1, got {value}")
    return value


#: argparse type for counts that must be at least 1.
positive_arg = argtype(_positive_int, "count")


def add_input_args(p: argparse.ArgumentParser) -> None:
    """--in-channels/--input-size/--num-classes, which presets take from the data set."""
    g = p.add_argument_group("input of presets (defaults: CIFAR-10)")
    g.add_argument(
        "--in-channels", type=positive_arg, default=3, metavar="C", help="input channels (3)"
    )
    g.add_argument(
        "--input-size", type=positive_arg, default=32, metavar="S", help="input side (32)"
    )
    g.add_argument("--num-classes", type=positive_arg, default=10, metavar="K", help="classes (10)")


#: argparse type for --param-limit: 5M, 4.5e6, 500k, 5000000.
limit_arg = argtype(lambda text: parse_count(text, "parameter limit"), "limit")
#: argparse type for --flops-limit: 500M, 2G, 1.5e9.
flops_arg = argtype(lambda text: parse_count(text, "FLOPs limit"), "limit")
batch_arg = argtype(lambda text: parse_count(text, "batch"), "batch")


def add_hardware_args(p: argparse.ArgumentParser, *, limits: bool) -> None:
    """``--latency`` and how to measure (``--device``, ``--latency-batch``); with ``limits``,
    the latency and memory limits a search would apply (from the metric registry)."""
    g = p.add_argument_group("latency and peak memory (measured, as a search measures them)")
    g.add_argument(
        "--latency",
        action="store_true",
        help="measure latency (median of 30 timed runs after warm-up) and peak memory "
        "(CUDA: measured; CPU: estimated from tensor sizes)",
    )
    g.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda,cuda:N}",
        help="where to measure (auto: CUDA if available)",
    )
    g.add_argument(
        "--latency-batch",
        type=batch_arg,
        metavar="B",
        help="images per forward pass (default: 1 on CPU, 32 on CUDA); implies --latency",
    )
    if limits:
        for m in hardware():
            assert m.limit is not None
            g.add_argument(
                m.limit.flag,
                type=argtype(m.limit.parse, "limit"),
                metavar="LIMIT",
                help=f"{m.limit.help} (implies --latency)",
            )


def hardware_context(args: argparse.Namespace) -> Any:
    """The measurement context the arguments ask for (None: no measurement asked)."""
    if not (args.latency or hardware_limits(args) or args.latency_batch):  # each implies it
        return None
    from nas.hardware.context import HardwareContext
    from nas.training import resolve_device

    return HardwareContext.current(resolve_device(args.device), args.latency_batch)


def hardware_limits(args: argparse.Namespace) -> dict[str, float]:
    """The latency and memory limits given, by metric name."""
    out = {}
    for m in hardware():
        value = getattr(args, m.limit.setting, None) if m.limit else None
        if value is not None:
            out[m.name] = value
    return out


# ------------------------------------------------------------------------- presets
def _presets_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON: a list of {name, source, reported (what the source reports), "
        "params (counted here), arch (the config)}",
    )


def _presets_run(args: argparse.Namespace) -> int:
    from nas.counting import count
    from nas.presets import PRESETS, preset

    rows = []
    data = []
    for name, pre in PRESETS.items():
        cfg = preset(name)
        c = count(cfg, flops=False)
        rows.append([name, fmt_int(c.params), cfg.summary(), pre.source])
        data.append(
            {
                "name": name,
                "source": pre.source,
                "reported": pre.reported,
                "params": c.params,
                "arch": cfg.to_dict(),
            }
        )
    if args.json:
        print_json(data)
    else:
        console.print(
            table(
                "Presets (CIFAR-10 input: 3x32x32, 10 classes)",
                ["name", "params", "architecture", "source"],
                rows,
                right=(1,),
            )
        )
        console.print("Count one with: nas count --preset NAME")
    return 0


COMMANDS.add(
    "presets",
    Command(
        name="presets",
        help="list the seed architectures",
        description="List the named architectures from the seed papers, with their parameters.",
        examples="  nas presets\n  nas presets --json | jq '.[].name'\n",
        add_arguments=_presets_args,
        run=_presets_run,
    ),
)


# ------------------------------------------------------------------------- count
def _count_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", metavar="NAME", help="a preset name (see 'nas presets')")
    src.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="an architecture JSON/YAML file (a config or a 'nas export' file)",
    )
    p.add_argument(
        "--param-limit", type=limit_arg, metavar="LIMIT", help="also say whether it fits, e.g. 5M"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print an object with integer 'params' and 'flops' and the breakdown",
    )
    add_input_args(p)
    add_hardware_args(p, limits=False)


def load_arch(args: argparse.Namespace) -> tuple[str, ArchConfig]:
    """The architecture named by --preset or --config."""
    from nas.config import ArchConfig
    from nas.presets import preset

    if args.config and (args.in_channels, args.input_size, args.num_classes) != (3, 32, 10):
        raise NasError(
            "--in-channels, --input-size and --num-classes apply to --preset; "
            "a config file sets its own input"
        )
    if args.preset:
        return args.preset, preset(
            args.preset,
            in_channels=args.in_channels,
            input_size=args.input_size,
            num_classes=args.num_classes,
        )
    return str(args.config), ArchConfig.from_file(args.config)


def _count_run(args: argparse.Namespace) -> int:
    from nas.counting import count

    name, cfg = load_arch(args)
    start = time.perf_counter()
    c = count(cfg)
    seconds = time.perf_counter() - start
    context = hardware_context(args)
    measured = None
    if context is not None:
        from nas.hardware.measure import measure

        measured = measure(cfg, context)
    if args.json:
        out = {"name": name, **c.to_dict(), "arch": cfg.to_dict(), "seconds": seconds}
        if args.param_limit:
            out["param_limit"] = args.param_limit
            out["fits"] = c.params <= args.param_limit
        if measured is not None:
            assert measured.memory_bytes is not None
            out["latency"] = measured.latency_ms
            out["memory"] = measured.memory_bytes / 1e6
            out["hardware"] = {**context.to_dict(), "memory_estimated": context.estimated_memory}
            out["hardware_seconds"] = measured.seconds
        print_json(out)
        return 0
    print_counts(name, cfg, c, args.param_limit)
    console.print(f"counted in {seconds * 1000:.0f} ms (fvcore; 1 multiply-add = 1 flop)")
    if measured is not None:
        print_measured(measured, context)
    return 0


def print_measured(measured: Any, context: Any) -> None:
    """``latency 7.13 ms per batch of 1 (median of 30 runs), peak memory 1.36 MB (estimate)``
    and where it was measured."""
    assert measured.memory_bytes is not None
    estimate = " (estimate from tensor sizes)" if context.estimated_memory else ""
    console.print(
        f"latency {METRICS['latency'].show(measured.latency_ms)} per batch of {context.batch} "
        f"(median of {measured.runs} runs), peak memory "
        f"{METRICS['memory'].show(measured.memory_bytes / 1e6)}{estimate}",
        markup=False,
    )
    console.print(f"measured on {context.describe()} in {measured.seconds:.2f} s", markup=False)


def print_counts(name: str, cfg: ArchConfig, c: Counts, limit: int | None = None) -> None:
    """The count table of one architecture."""
    console.print(f"[bold]{name}[/]: {cfg.summary()}")
    rows = [
        [
            s.name,
            fmt_int(s.params),
            fmt_int(s.flops),
            fmt_int(s.attention_params),
            fmt_int(s.attention_flops),
            s.attention_modules or "",
        ]
        for s in c.parts
    ]
    rows.append(
        [
            "total",
            fmt_int(c.params),
            fmt_int(c.flops),
            fmt_int(c.attention_params),
            fmt_int(c.attention_flops),
            len(c.attention) or "",
        ]
    )
    console.print(
        table(
            None,
            ["part", "params", "FLOPs", "attn params", "attn FLOPs", "attn"],
            rows,
            right=(1, 2, 3, 4, 5),
        )
    )
    if limit:
        verdict = "fits" if c.params <= limit else "[red]exceeds[/]"
        console.print(
            f"{human(c.params)} params {verdict} the limit of {human(limit)} "
            f"({100 * c.params / limit:.2f}% used)"
        )


COMMANDS.add(
    "count",
    Command(
        name="count",
        help="count parameters and FLOPs of an architecture",
        description=(
            "Count parameters (fvcore.nn.parameter_count, on the meta device: no weights are\n"
            "allocated) and FLOPs (fvcore.nn.FlopCountAnalysis at the config's input size, one\n"
            "multiply-add = one flop, attention ops included), with a breakdown per stage and\n"
            "per attention module."
        ),
        examples=(
            "  nas count --preset enhanced-efficient-resnet\n"
            "  nas count --preset resnet20 --param-limit 300k\n"
            "  nas count --preset resnet20-cbam --num-classes 100 --json\n"
            "  nas count --config best.json            # a file written by 'nas export'\n"
            "  nas count --preset resnet20 --latency   # also latency and peak memory\n"
        ),
        add_arguments=_count_args,
        run=_count_run,
    ),
)


# ------------------------------------------------------------------------- sample
def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--space",
        default=DEFAULT_SPACE_PATH,
        metavar="FILE",
        help=f"search-space TOML file (default: {DEFAULT_SPACE_PATH})",
    )
    p.add_argument(
        "-n", type=int, default=100, metavar="N", help="candidates to sample (100; at most 100,000)"
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="sampler seed (0)")
    default_limit = StudySettings().limits["params"]  # the search's, so the dry run agrees
    p.add_argument(
        "--param-limit",
        type=limit_arg,
        default=default_limit,
        metavar="LIMIT",
        help="parameter limit such as 5M, 4.5e6, 500k; candidates above it are rejected "
        f"(default {human(default_limit)}, as nas search's)",
    )
    p.add_argument(
        "--flops-limit",
        type=flops_arg,
        metavar="LIMIT",
        help="FLOPs limit such as 500M or 2G; candidates within the parameter limit but "
        "above it are rejected, as in a search",
    )
    p.add_argument(
        "--no-flops", action="store_true", help="count parameters only (milliseconds per candidate)"
    )
    p.add_argument(
        "--all-flops",
        action="store_true",
        help="count FLOPs of rejected candidates too (by default only candidates "
        "that fit are traced, as in a search)",
    )
    p.add_argument(
        "--workers",
        type=positive_arg,
        default=None,
        metavar="W",
        help="processes for FLOP counting (default: all cores)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print candidates (arch, params, flops, feasible) and rejection_rate",
    )
    add_input_args(p)
    add_hardware_args(p, limits=True)


#: The most candidates one dry run draws: a distribution is plain after a few thousand,
#: and every candidate is kept in memory for the report.
MAX_SAMPLE = 100_000


def _sample_run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from nas.sampling import sample
    from nas.space import load_space

    if not 1 <= args.n <= MAX_SAMPLE:
        raise NasError(f"-n must be between 1 and {MAX_SAMPLE:,}, got {args.n:,}")
    space = load_space(args.space)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=args.json and not err_console.is_terminal,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"counting {phase}", total=total)
            bar.update(tasks[phase], completed=done)

        report = sample(
            space,
            args.n,
            seed=args.seed,
            limit=args.param_limit,
            flops_limit=args.flops_limit,
            in_channels=args.in_channels,
            input_size=args.input_size,
            num_classes=args.num_classes,
            flops=not args.no_flops,
            all_flops=args.all_flops,
            workers=args.workers,
            progress=progress,
            hardware=hardware_context(args),
            hardware_limits=hardware_limits(args),
        )
    if args.json:
        print_json(report.to_dict())
    else:
        print_sample(report)
    return 0


#: The columns of a dry run's distribution table.
QUARTILES = ("min", "p25", "median", "p75", "max")


def _distribution_rows(report: SampleReport, d: dict[str, Any]) -> list[list[object]]:
    """The quartiles of a dry run's parameter and FLOP counts and of each hardware metric it
    measured, one row each (``d``: the report as a dict)."""
    rows: list[list[object]] = []
    for label, key, fmt in (
        ("params (all)", "params", human),
        ("params (feasible)", "feasible_params", human),
        ("FLOPs (counted)", "flops", human),
    ):
        dist = d[key]
        if dist:
            rows.append([label, *(fmt(dist[k]) for k in QUARTILES)])
    for m in hardware():
        dist = d.get(m.name)
        if dist:
            quartiles = (m.fmt(dist[k]) for k in QUARTILES)
            how = (
                "estimated"
                if m.name == "memory" and report.hardware.estimated_memory
                else "measured"
            )
            rows.append([f"{m.heading} ({how})", *quartiles])
    return rows


def print_sample(report: SampleReport) -> None:
    """The human summary of a dry run."""
    d = report.to_dict()
    n = d["n"]
    limits = [f"params {human(report.limit)}" if report.limit else "no parameter limit"]
    if report.flops_limit:
        limits.append(f"FLOPs {human(report.flops_limit)}")
    for name, value in (report.hardware_limits or {}).items():
        limits.append(f"{METRICS[name].label} {METRICS[name].show(value)}")
    by = ", ".join(f"{k} {v}" for k, v in report.rejected_by.items() if v)
    console.print(
        f"[bold]{report.space}[/]: {plural(n, 'candidate')} (seed {report.seed}, limits: "
        f"{', '.join(limits)}): {d['feasible']} fit, rejection rate "
        f"{100 * report.rejection_rate:.1f}%" + (f" (rejected by {by})" if by else "")
    )
    console.print(
        table(
            "Distribution",
            ["", *QUARTILES],
            _distribution_rows(report, d),
            right=(1, 2, 3, 4, 5),
        )
    )
    for title, groups in (
        ("By attention type", report.by_attention),
        ("By placement", report.by_placement),
    ):
        rows = [
            [k, a, b, f"{100 * (a - b) / a:.0f}%" if a else "-"] for k, (a, b) in groups.items()
        ]
        console.print(table(title, ["", "sampled", "feasible", "rejected"], rows, right=(1, 2, 3)))
    per = 1000 * report.params_seconds / max(n, 1)
    console.print(
        f"parameter counts: {report.params_seconds:.1f} s ({per:.1f} ms per candidate)"
        + (f"; FLOP counts: {report.flops_seconds:.1f} s" if report.flops_seconds > 0.01 else "")
    )
    if report.hardware is not None:
        measured = sum(1 for c in report.candidates if c.measured)
        estimate = (
            "; peak memory estimated from tensor sizes" if report.hardware.estimated_memory else ""
        )
        console.print(
            f"latency and peak memory of {measured} candidates: {report.hardware_seconds:.1f} s, "
            f"measured on {report.hardware.describe()}{estimate}",
            markup=False,
        )


COMMANDS.add(
    "sample",
    Command(
        name="sample",
        help="dry-run a search space: sample, count, check the limit, train nothing",
        description=(
            "Sample candidates of a search space at random and count each with fvcore, as a\n"
            "search would before training: how many fit the limit, the distribution of\n"
            "parameters and FLOPs, and counts per attention type and placement."
        ),
        examples=(
            "  nas sample --space search_spaces/attention_resnet.toml -n 300 --param-limit 5M\n"
            "  nas sample -n 1000 --param-limit 2M --no-flops      # budget check only, fastest\n"
            "  nas sample -n 300 --param-limit 5M --flops-limit 500M   # both budgets\n"
            "  nas sample --space search_spaces/small_cifar.toml -n 50 --json > sample.json\n"
            "  nas sample --space search_spaces/small_cifar.toml -n 30 --latency-limit 2ms\n"
        ),
        add_arguments=_sample_args,
        run=_sample_run,
    ),
)
