"""MkDocs hook: the reference pages, generated at build time from the declarations the
``nas`` command itself is built from, so they cannot drift from it.

* ``reference/commands.md``: every command's ``--help``, as ``nas CMD --help`` prints it.
* ``reference/settings.md``: every setting of ``nas search`` and ``nas fidelity``: flag,
  study-file key, default, kind (pinned, kept, per run) and help, from
  :func:`nas.settings.declared`.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout, suppress
from typing import Any

from mkdocs.structure.files import File, Files

COMMANDS_PAGE = "reference/commands.md"
SETTINGS_PAGE = "reference/settings.md"

KIND_TEXT = {
    "pinned": "pinned: a study keeps it for life; another value is refused",
    "kept": "kept: recorded; a given value replaces the record",
    "per run": "per run: never recorded",
}


def _help(command: str) -> str:
    from nas.cli.main import build_parser

    os.environ["COLUMNS"] = "100"
    parser = build_parser()
    out = io.StringIO()
    with redirect_stdout(out), suppress(SystemExit):
        parser.parse_args([command, "--help"] if command else ["--help"])
    return out.getvalue().rstrip()


def commands_page() -> str:
    """Every command's ``--help``."""
    from nas.cli.main import COMMANDS, _load_commands

    _load_commands()
    parts = [
        "# Commands\n",
        "Generated from the parser `nas` itself builds (`docs/hooks.py`): what each command's "
        "`--help` prints.\n",
        "## nas\n",
        f"```\n{_help('')}\n```\n",
    ]
    for name, _ in COMMANDS.items():
        parts += [f"## nas {name}\n", f"```\n{_help(name)}\n```\n"]
    return "\n".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def settings_table(cls: type[Any]) -> str:
    """One row per setting of ``cls``."""
    from nas.settings import declared, show

    rows = [
        "| setting (study-file key) | flag | default | kind | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in declared(cls):
        s = d.setting
        if s.hidden:
            continue
        help_text = s.help() if callable(s.help) else s.help
        default = show(s, d.default) if d.default is not None else "none"
        rows.append(
            f"| `{d.name}` | {f'`{d.flag}`' if d.flag else 'study file only'} | "
            f"`{_cell(default)}` | {KIND_TEXT[s.kind].split(':')[0]} | {_cell(help_text)} |"
        )
    return "\n".join(rows)


def settings_page() -> str:
    """Every setting of ``nas search`` and ``nas fidelity``."""
    from nas.fidelity.settings import FidelitySettings
    from nas.search.settings import SearchSettings

    kinds = "\n".join(
        f"* **{text.split(':')[0]}**:{text.split(':', 1)[1]}" for text in KIND_TEXT.values()
    )
    return "\n".join(
        [
            "# Settings\n",
            "Generated from the declarations the command line, the study files and the study "
            "records are built from (`nas/search/settings.py`, `nas/fidelity/settings.py`, "
            "`nas/study/settings.py`). A setting is given as its flag or, in a study file, "
            "under its table with its key; a run takes the flag, else the study file, else "
            "the value the study recorded, else the default. Kinds:\n",
            kinds + "\n",
            "## nas search (`[search]` in a study file)\n",
            settings_table(SearchSettings) + "\n",
            "## nas fidelity (flags)\n",
            settings_table(FidelitySettings) + "\n",
        ]
    )


def on_files(files: Files, config: Any) -> Files:
    """Add the generated reference pages."""
    for path, content in ((COMMANDS_PAGE, commands_page()), (SETTINGS_PAGE, settings_page())):
        files.append(File.generated(config, path, content=content))
    return files
