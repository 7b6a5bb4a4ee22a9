"""What several commands share: the study a command names, output paths, SIGTERM, the data
flags and ``--show-settings``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from nas.cli.output import console, table
from nas.errors import Interrupted, StorageError
from nas.settings import add_flags, describe
from nas.study.settings import GROUPS, StudySettings
from nas.units import plural

if TYPE_CHECKING:
    from collections.abc import Callable

    import optuna

    from nas.settings import Resolved, SettingsSource
    from nas.study.address import StudyAddress


def file_arg(text: str) -> Path:
    """An output file's path as typed: one that ends with a separator names a folder, which
    ``Path`` would silently turn into a file of the folder's name."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(
            f"{text} names a folder (it ends with '/'); give a file, e.g. {text}report.html"
        )
    return Path(text)


def open_named_study(
    args: argparse.Namespace, *, read_only: bool = False
) -> tuple[optuna.Study, StudyAddress]:
    """The study named by --study in --storage (or its default SQLite file), and where it
    lives; a URL that cannot name a database is refused in one line (see
    :class:`~nas.study.address.StudyAddress`). ``read_only``: for a command that never
    writes to the study, which then reads one on a read-only disk too."""
    from nas.study.address import StudyAddress
    from nas.study.storage import load_study

    address = StudyAddress.of(args.storage, args.study)
    if not args.storage and not address.exists():
        raise StorageError(f"no study database {address.sqlite_path} here; pass --storage URL")
    return load_study(address.open(must_exist=True, read_only=read_only), args.study), address


def raise_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a pre-empted machine, a stopped container) ends like Ctrl-C, and says so."""
    raise Interrupted("SIGTERM")


#: The help of ``--dataset`` and ``--data-dir`` in a command that reads a study's data.
STUDY_DATA_HELP = {
    "dataset": "the data set the study was searched on (default: the study's; another is refused)",
    "data_dir": "its folder (default: the study's; another only where the recorded one is not "
    "on this machine: the data moved, or this machine mounts it elsewhere)",
}


def add_data_args(p: argparse.ArgumentParser, *, of_study: bool = False) -> None:
    """--dataset, --data-dir, --device, declared once for every study (shared by search,
    train-winners and fidelity); a flag not given leaves no attribute. ``of_study``: the
    command reads a study's data, whose own is the default."""
    helps = STUDY_DATA_HELP if of_study else None
    add_flags(p, StudySettings, only=("dataset", "data_dir", "device"), groups=GROUPS, helps=helps)


SHOW_SETTINGS_HELP = (
    "print the effective value of every setting and where it came from (flag, study file, "
    "recorded by the study, default), then exit without running"
)


def print_settings(resolved: Resolved, title: str) -> None:
    """The ``--show-settings`` table: every setting, its value, origin and kind."""
    rows = [list(r) for r in describe(resolved)]
    console.print(table(title, ["setting", "value", "from", "kind"], rows, right=()))


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
    if resolved.record_found:
        devices = address.peek_devices()
        if devices:
            listed = ", ".join(f"{d} ({plural(n, 'trial')})" for d, n in devices.items())
            console.print(
                f"the study's trained trials trained on {listed}; --device is chosen per run",
                highlight=False,
                markup=False,
            )
        from nas.study.record import HARDWARE

        hardware = address.peek_attr(HARDWARE)
        if isinstance(hardware, dict):
            from nas.hardware.context import HardwareContext

            context = HardwareContext.from_dict(hardware).describe()
            console.print(
                f"latency and memory measured on {context} (recorded)",
                highlight=False,
                markup=False,
            )
