"""``nas search``: run or continue a study."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from nas.cli.main import COMMANDS, Command
from nas.cli.output import console, fmt_int, print_hint, table
from nas.errors import Interrupted
from nas.search.settings import GROUPS, SearchSettings
from nas.settings import add_flags, describe, flags_given, read_table
from nas.study import record as rec
from nas.units import human, plural

if TYPE_CHECKING:
    from collections.abc import Callable

    from nas.search.loop import SearchOutcome
    from nas.settings import Resolved
    from nas.study.address import StudyAddress
    from nas.study.protocol import SettingsSource


def add_data_args(p: argparse.ArgumentParser) -> None:
    """--dataset, --data-dir, --device, declared by the search's settings (shared with
    train-winners and fidelity); a flag not given leaves no attribute."""
    add_flags(p, SearchSettings, only=("dataset", "data_dir", "device"), groups=GROUPS)


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


SHOW_SETTINGS_HELP = (
    "print the effective value of every setting and where it came from (flag, study file, "
    "recorded by the study, default), then exit without searching"
)


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "study_file",
        nargs="?",
        metavar="STUDY_FILE",
        help="a study TOML with a [search] table (flags given here win over it)",
    )
    p.add_argument("--show-settings", action="store_true", help=SHOW_SETTINGS_HELP)
    add_flags(p, SearchSettings, groups=GROUPS)


def source_from_args(args: argparse.Namespace) -> SettingsSource:
    """What the command line gave: the flags typed and the study file's ``[search]`` table."""
    from nas.search.study import RECORD_KEY
    from nas.study.protocol import SettingsSource

    file = (
        read_table(Path(args.study_file), "search", SearchSettings, others=("train_winners",))
        if args.study_file
        else {}
    )
    return SettingsSource(SearchSettings, RECORD_KEY, flags_given(args, SearchSettings), file)


def print_settings(resolved: Resolved, title: str) -> None:
    """The ``--show-settings`` table: every setting, its value, origin and kind."""
    rows = [list(r) for r in describe(resolved)]
    console.print(table(title, ["setting", "value", "from", "kind"], rows, right=()))


def _show(source: SettingsSource) -> int:
    from nas.search.study import source_address

    show_settings(source, source_address(source), "nas search", fit=fit_to_local_data)
    return 0


def fit_to_local_data(resolved: Resolved) -> tuple[Resolved, list[str]]:
    """The image counts as the run will take them, for ``--show-settings``: fitted to the
    data (:func:`nas.search.fit.fit_to_data`) when they are on this disk without a download
    (an image folder is decoded once here and cached for the run); otherwise the values as
    given, with a line saying when they are checked.

    Raises:
        NasError: as the run would, for missing data or a count the data cannot meet.
    """
    from nas.data.catalog import DATASETS
    from nas.search.fit import fit_to_data

    settings: SearchSettings = resolved.settings
    if DATASETS[settings.dataset].downloads:
        return resolved, [
            f"--proxy-subset and --proxy-val are checked against {settings.dataset} "
            "when the run starts"
        ]
    from nas.data import load_dataset

    data = load_dataset(settings.dataset, settings.data_dir)
    fitted = fit_to_data(resolved, len(data.train_y))
    return fitted.resolved, fitted.notes


def show_settings(
    source: SettingsSource,
    address: StudyAddress,
    command: str,
    fit: Callable[[Resolved], tuple[Resolved, list[str]]] | None = None,
) -> None:
    """``--show-settings``: the effective settings against the study's record, if any
    (``fit``: the run's adjustments to the data, with a line for each)."""
    resolved = source.peek(address)
    notes: list[str] = []
    if fit is not None:
        resolved, notes = fit(resolved)
    exists = "resumes" if resolved.record_found else "would create"
    print_settings(resolved, f"{command} {exists} study {address.name!r} in {address.safe}")
    for note in notes:
        console.print(note, highlight=False, markup=False)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nas.search.events import LiveMonitor, LogMonitor, SearchMonitor
    from nas.search.loop import run_search

    source = source_from_args(args)
    if args.show_settings:
        return _show(source)
    signal.signal(signal.SIGTERM, raise_interrupt)
    requested: SearchSettings = source.resolve(None, "the study").settings
    if requested.workers > 1:
        from nas.search.workers import run_workers

        outcome, code = run_workers(source, requested.workers)
        print_summary(outcome, outcome.settings)
        return code
    err = Console(stderr=True)
    monitor: SearchMonitor = (
        LogMonitor() if requested.quiet or not err.is_terminal else LiveMonitor(err)
    )
    outcome = run_search(source, monitor, worker=requested.worker_index)
    print_summary(outcome, outcome.settings)
    return 130 if outcome.interrupted else 0


def raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a pre-empted machine, a stopped container) ends like Ctrl-C, and says so."""
    raise Interrupted("SIGTERM")


def print_summary(outcome: SearchOutcome, settings: SearchSettings) -> None:
    """End-of-search summary: totals, rejection rates, the Pareto front, how the guided
    trials compare with the random start-up ones, the best trial (on the front)."""
    from nas.config import ArchConfig
    from nas.search.stats import (
        accuracy_of,
        fidelity_text,
        proxy_fidelity,
        second_objective,
        study_startup_comparison,
    )

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
            arch = t.user_attrs.get(rec.ARCH, {})
            summary = ArchConfig.from_dict(arch).summary() if arch else "?"
            rows.append(
                [
                    t.number,
                    f"{accuracy_of(t):.4f}",
                    fmt_int(t.user_attrs.get(rec.PARAMS)),
                    human(t.user_attrs.get(rec.FLOPS, 0)),
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
    comparison = study_startup_comparison(outcome.study, s.trials)
    console.print(f"guided vs random start-up: {comparison.verdict}", markup=False)
    if s.best is not None:
        console.print(f"best: trial {s.best.number}, val acc {accuracy_of(s.best):.4f}")
        print_hint(*winners_hint(outcome, settings))


#: Epochs per winner in the hint at the end of a search: a quick check that the winners
#: train, finished in minutes on a CPU for the small space; real training takes ~200.
HINT_EPOCHS = 1


def winners_hint(outcome: SearchOutcome, settings: SearchSettings) -> tuple[list[str], str]:
    """The ``nas train-winners`` command that follows a search, and what it does."""
    args = ["nas", "train-winners", "--storage", outcome.address.url]
    args += ["--study", outcome.study.study_name, "--top-k", "3", "--epochs", str(HINT_EPOCHS)]
    if settings.device != "auto":
        args += ["--device", settings.device]
    meaning = (
        f"a quick check: the 3 best trials train for {plural(HINT_EPOCHS, 'epoch')} each on the "
        "whole training split; real training takes about 200 (--epochs 200)"
    )
    return args, meaning


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
            "  nas search studies/smoke.toml   # smoke test: random images, a CPU, ~10 s\n"
            "  nas search --space search_spaces/small_cifar.toml --param-limit 150k \\\n"
            "      --dataset imagefolder --data-dir /tmp/cifar10 --device cpu \\\n"
            "      --proxy-epochs 1 --proxy-subset 2000 --proxy-val 1000 --trials 3 \\\n"
            "      --storage sqlite:///s.db --study demo --seed 0   # your images, a CPU, ~25 s\n"
            "  nas search --dataset cifar10 --param-limit 5M --trials 50 --study c10-5m   # GPU\n"
            "  nas search studies/cifar10_5m.toml --trials 100      # settings from a file\n"
            "  nas search --objectives accuracy,flops --sampler nsga2 --enqueue-presets\n"
            "  nas search --param-limit 5M --flops-limit 500M   # a budget for both\n"
        ),
        add_arguments=_args,
        run=_run,
    ),
)
