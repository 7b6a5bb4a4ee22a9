"""``nas search``: run or continue a study (a thin shell over :func:`nas.search.run_search`)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.cli.common import SHOW_SETTINGS_HELP, raise_interrupt, show_settings
from nas.cli.main import COMMANDS, Command
from nas.cli.output import console, print_hint, table
from nas.objectives import METRICS
from nas.search.settings import GROUPS, SearchSettings
from nas.settings import add_flags, build_given, flags_given, read_table
from nas.units import plural

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from nas.search.events import SearchMonitor
    from nas.search.loop import SearchOutcome
    from nas.settings import Resolved, SettingsSource


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
    from nas.settings import SettingsSource
    from nas.study.record import SEARCH_SETTINGS

    file = (
        read_table(Path(args.study_file), "search", SearchSettings, others=("train_winners",))
        if args.study_file
        else {}
    )
    return SettingsSource(SearchSettings, SEARCH_SETTINGS, flags_given(args, SearchSettings), file)


def _show(source: SettingsSource) -> int:
    from nas.search.study import source_address

    show_settings(source, source_address(source), "nas search", fit=fit_to_local_data)
    return 0


def fit_to_local_data(resolved: Resolved) -> tuple[Resolved, list[str]]:
    """The image counts as the run will take them, for ``--show-settings`` (after the space
    file is read and checked, as the run reads it): fitted to the
    data (:meth:`nas.settings.Resolved.fit`) when they are on this disk without a download
    (an image folder is decoded once here and cached for the run); otherwise the values as
    given, with a line saying when they are checked.

    Raises:
        NasError: as the run would, for missing data or a count the data cannot meet.
    """
    from nas.data.catalog import DATASETS
    from nas.space import load_space

    settings: SearchSettings = resolved.settings
    # a missing or malformed space file: refused as the run would
    load_space(settings.space, recorded=resolved.record_found)
    if DATASETS[settings.dataset].downloads:
        return resolved, [
            f"--proxy-subset and --proxy-val are checked against {settings.dataset} "
            "when the run starts"
        ]
    from nas.data import load_dataset
    from nas.data.splits import split_room

    data = load_dataset(settings.dataset, settings.data_dir)
    return resolved.fit(split_room(len(data.train_y), settings.val_fraction))


def _given(source: SettingsSource, name: str, default: Any) -> Any:
    """A per-run setting as the command line or study file gave it (never recorded)."""
    return source.flags.get(name, source.file.get(name, default))


def monitor_for(source: SettingsSource) -> SearchMonitor:
    """The live table on a terminal, plain log lines with ``--quiet`` or into a file."""
    from rich.console import Console

    from nas.search.events import LiveMonitor, LogMonitor

    err = Console(stderr=True)
    quiet = bool(_given(source, "quiet", False))
    return LogMonitor() if quiet or not err.is_terminal else LiveMonitor(err)


def check_given(source: SettingsSource) -> None:
    """Refuse a given value no study could take (``--trials 0``, ``--eta 1``, an unknown
    sampler in a study file), in one line and before torch is imported: the settings
    given, checked on their own (the record can only add values, never fix a given one).

    Raises:
        NasError: naming the setting.
    """
    build_given(SearchSettings, {**source.file, **source.flags}, source.origins())


def _check(args: argparse.Namespace) -> None:
    check_given(source_from_args(args))


def _run(args: argparse.Namespace) -> int:
    from nas.search.api import run_search
    from nas.search.workers import follow_parent

    source = source_from_args(args)
    if args.show_settings:
        return _show(source)
    signal.signal(signal.SIGTERM, raise_interrupt)
    follow_parent()  # a worker of --workers K stops (its trial retried) when its launcher dies
    outcome = run_search(source, monitor_for(source))
    print_summary(outcome, outcome.settings)
    return outcome.exit_code


def print_summary(outcome: SearchOutcome, settings: SearchSettings) -> None:
    """End-of-search summary: totals, rejection rates, the Pareto front, how the guided
    trials compare with the random start-up ones, the best trial (on the front)."""
    from nas.hardware.context import study_hardware_text
    from nas.proxy.fidelity import fidelity_text, proxy_fidelity
    from nas.study.record import TrialRecord
    from nas.study.stats import study_startup_comparison

    s = outcome.stats
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
    retries = [
        (r.retry_of, r.trial.number) for r in map(TrialRecord, s.trials) if r.retry_of is not None
    ]
    if retries:
        pairs = ", ".join(f"trial {a} as {b}" for a, b in retries)
        console.print(f"retried (interrupted, or their worker died): {pairs}", markup=False)
    print_front(s.pareto, settings.objectives, s.trials, tuple(settings.limits))
    hardware = study_hardware_text(outcome.study)
    if hardware:
        console.print(hardware, markup=False)
    fidelity = proxy_fidelity(s.trials)
    if fidelity["n"]:
        console.print(
            "proxy fidelity (proxy vs full validation accuracy of the fully trained winners): "
            + fidelity_text(fidelity)
        )
    comparison = study_startup_comparison(outcome.study, s.trials)
    console.print(f"guided vs random start-up: {comparison.verdict}", markup=False)
    if s.best is not None:
        console.print(f"best: {best_text(s)}", markup=False)
    for label, args, meaning in next_steps(outcome, settings):
        print_hint(args, meaning, label=label)


def next_steps(
    outcome: SearchOutcome, settings: SearchSettings
) -> list[tuple[str, list[str], str]]:
    """The commands a search's summary ends with, as (label, command, what it does): after
    an interrupt, the one that continues the study; after a run that trained nothing because
    the study had its ``--trials``, the one that trains more; with a best trial, the full
    training of the winners (or, on data without a test split, the export). Nothing for a
    study kept in memory."""
    if outcome.address is None:
        return []
    if outcome.interrupted:
        return [("next", *resume_hint(outcome, settings))]
    steps: list[tuple[str, list[str], str]] = []
    s = outcome.stats
    if outcome.had_enough:
        steps.append(("to train more", *more_hint(outcome, settings)))
    if s.best is not None:
        follow = winners_hint(outcome, settings) if outcome.has_test else export_hint(outcome)
        steps.append(("next", *follow))
    return steps


def best_text(s: Any) -> str:
    """``trial 7, val acc 0.1680 (mean of 2); chosen by ...``: the best trial as every
    command names it (:data:`nas.study.stats.BEST_RULE`)."""
    from nas.study.stats import full_val_accuracy

    assert s.best is not None and s.best_accuracy is not None
    accuracy = f"val acc {s.best_accuracy:.4f}"
    if s.best_runs > 1:
        accuracy += f" (mean of {s.best_runs})"
    full = full_val_accuracy(s.best)
    if full is not None:
        accuracy = f"full val acc {full:.4f}, proxy {accuracy}"
    return f"trial {s.best.number}, {accuracy}; chosen by {s.best_rule}"


def front_columns(objectives: tuple[str, ...], limited: tuple[str, ...] = ()) -> list[str]:
    """The metrics a front table shows: the study's costs, its limited metrics and every
    metric always recorded, in registry order."""
    return [
        n
        for n, m in METRICS.items()
        if n != "accuracy" and (n in objectives or n in limited or m.always)
    ]


def print_front(
    front: list[FrozenTrial],
    objectives: tuple[str, ...],
    trials: list[FrozenTrial],
    limited: tuple[str, ...] = (),
) -> None:
    """The Pareto front as a table (one column per metric of :func:`front_columns`); a
    candidate evaluated several times shows its mean accuracy and how many runs it has."""
    from nas.config import ArchConfig
    from nas.study.record import TrialRecord
    from nas.study.stats import candidate_runs, mean_accuracy

    runs = candidate_runs(trials)

    if not front:
        console.print("no trained trial yet, so no Pareto front")
        return
    metrics = front_columns(objectives, limited)
    rows = []
    for t in front:
        r = TrialRecord(t)
        summary = ArchConfig.from_dict(r.arch).summary() if r.arch else "?"
        shown = [METRICS[m].fmt(v) if (v := r.value(m)) is not None else "-" for m in metrics]
        group = runs.get(t.number, [t])
        accuracy = f"{mean_accuracy(group):.4f}"
        if len(group) > 1:
            accuracy += f" (mean of {len(group)})"
        rows.append([t.number, accuracy, *shown, f"{r.seconds or 0:.0f}s", summary])
    against = ", ".join(METRICS[c].label for c in objectives[1:]) or "params"
    labels = [METRICS[m].heading for m in metrics]
    console.print(
        table(
            f"Pareto front (val accuracy vs {against})",
            ["trial", "val acc", *labels, "time", "architecture"],
            rows,
            right=tuple(range(len(labels) + 3)),
        )
    )


#: Epochs per winner in the hint at the end of a search: a first look that the winners
#: train, finished in minutes on a CPU for the small space; real training takes ~200.
HINT_EPOCHS = 1


def _search_again(outcome: SearchOutcome, settings: SearchSettings, *more: str) -> list[str]:
    """``nas search`` on the same study (its recorded settings), with ``more`` flags and
    the device this run was given."""
    assert outcome.address is not None
    args = ["nas", "search", "--storage", outcome.address.url, "--study", outcome.study.study_name]
    args += more
    if settings.device != "auto":
        args += ["--device", settings.device]
    return args


def resume_hint(outcome: SearchOutcome, settings: SearchSettings) -> tuple[list[str], str]:
    """After Ctrl-C or SIGTERM: the command that continues the study where it stopped."""
    return _search_again(outcome, settings), (
        "continues the study with its recorded settings; the interrupted trial is retried "
        "first, with the same architecture"
    )


def more_hint(outcome: SearchOutcome, settings: SearchSettings) -> tuple[list[str], str]:
    """When a run trained nothing because the study already had ``--trials`` trained trials
    (``--trials`` counts the study's trained trials, not this run's): the command that
    trains as many again."""
    trained = outcome.stats.trained
    args = _search_again(outcome, settings, "--trials", str(trained + settings.trials))
    return args, (
        f"--trials counts the study's trained trials: it already had {trained}, at least as "
        f"many as --trials {settings.trials} asks for, so this run trained none; this trains "
        f"{settings.trials} more"
    )


def export_hint(outcome: SearchOutcome) -> tuple[list[str], str]:
    """For data without a test split (``nas train-winners`` refuses it): the export."""
    assert outcome.address is not None
    args = ["nas", "export", "--storage", outcome.address.url, "--study"]
    args += [outcome.study.study_name, "--best", "--out", "best.json"]
    return args, (
        "the best trial's config; nas train-winners needs a test split (DIR/test/<class>/*) "
        "to train the winners fully, so add one to the data to go on"
    )


def winners_hint(outcome: SearchOutcome, settings: SearchSettings) -> tuple[list[str], str]:
    """The ``nas train-winners`` command that follows a search, and what it does."""
    assert outcome.address is not None
    args = ["nas", "train-winners", "--storage", outcome.address.url]
    args += ["--study", outcome.study.study_name, "--top-k", "3", "--epochs", str(HINT_EPOCHS)]
    if settings.device != "auto":
        args += ["--device", settings.device]
    meaning = (
        f"a first look: the 3 best trials train for {plural(HINT_EPOCHS, 'epoch')} each on the "
        "training images outside the validation split, which chooses among them (minutes "
        "each on a CPU at CIFAR-10's size); real training takes about 200 (--epochs 200)"
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
            "(the trial ends PRUNED with user attribute 'rejected'; tpe and nsga2 learn the\n"
            "boundary from it, local never proposes it again); otherwise it is trained as a\n"
            "short proxy and scored on a validation split carved from the training images.\n"
            "Hopeless proxies are stopped early. Re-running the same command continues the\n"
            "study; --trials is the study-wide number of trained trials. Ctrl-C fails the\n"
            "running trial cleanly and prints the summary."
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
        check=_check,
    ),
)
