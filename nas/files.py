"""The project's files: TOML (space files, study files) read with one-line errors, and JSON
results written atomically and never mixed across settings."""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.errors import NasError, first_line

#: Where tomllib says a mistake is: ``... (at line 3, column 16)`` or ``(at end of document)``.
_WHERE = re.compile(
    r"^(?P<what>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


def _first_existing(path: Path) -> Path:
    """``path``, or the nearest folder above it that exists: where writing it starts."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(path: Path) -> None:
    """Refuse an output file that cannot be written, before any work is done (missing
    folders on its way would be created, ``reports/2026/report.html``; nothing is created
    here).

    Raises:
        NasError: in one line, naming why.
    """
    target = path.expanduser().absolute()
    if target.is_dir():
        raise NasError(f"cannot write {path}: it is a folder")
    existing = _first_existing(target)
    if not existing.is_dir() and existing != target:
        raise NasError(f"cannot write {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise NasError(f"cannot write {path}: permission denied")


def check_dir(path: Path) -> Path:
    """``path`` if it is a folder or can be made one (creating nothing, so that a refused
    run leaves nothing behind); returns it.

    Raises:
        NasError: in one line, when it cannot be (a file stands there or on its way, no
            permission).
    """
    existing = _first_existing(path.expanduser().absolute())
    if not existing.is_dir():
        where = "" if existing == path.expanduser().absolute() else f" ({existing} is a file)"
        raise NasError(f"cannot create the folder {path}: a file of that name exists{where}")
    if not os.access(existing, os.W_OK):
        raise NasError(f"cannot create the folder {path}: permission denied")
    return path


def make_dir(path: Path) -> Path:
    """``path`` as a folder, created with its parents if needed; returns it.

    Raises:
        NasError: in one line, when it cannot be (a file stands there, no permission).
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a file of that name exists" if isinstance(exc, FileExistsError) else exc.strerror
        raise NasError(f"cannot create the folder {path}: {why}") from None
    return path


def read_toml(path: Path, what: str, error: type[NasError] = NasError) -> dict[str, Any]:
    """Parse the TOML file ``path`` (a ``what``, for messages); raises ``error`` when it
    cannot be read or parsed, naming the line and column of the mistake as an editor
    numbers them."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")  # TOML is UTF-8, whatever the locale says
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(f"{path} is not valid TOML: not UTF-8 text (line {line})") from None
    try:
        return tomllib.loads(text)  # line breaks as TOML knows them: LF or CRLF
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path} is not valid TOML: {toml_problem(text, str(exc))}") from None


def read_torch(path: Path, what: str, hint: str, map_location: Any = "cpu") -> Any:
    """What ``torch.save`` wrote to ``path`` (a checkpoint, trained weights), read whole.

    Raises:
        NasError: in one line for a file torch cannot read (cut short, overwritten, not a
            torch file): ``cannot read {what} {path} (...); {hint}``.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        first = first_line(exc).split(". ")[0]
        raise NasError(
            f"cannot read {what} {path}: it is damaged or not a file torch saved ({first}); {hint}"
        ) from None


def toml_problem(text: str, message: str) -> str:
    """tomllib's ``message`` about ``text``, with the place of the mistake.

    tomllib reports where parsing stopped. For an array that is never closed, that is the
    first thing after the array's last value, which may be lines further down (arrays span
    lines): the mistake, the missing ``]``, is at the end of that last value, so that is
    the place given. A mistake found at the end of the document gets its last line.
    """
    match = _WHERE.match(message)
    if match is None:
        return message
    what = match["what"]
    lines = text.replace("\r\n", "\n").split("\n")
    if match["line"] is None:
        last = len(text.replace("\r\n", "\n").rstrip().split("\n"))
        if what == "Unclosed array":
            return f"{what} (at the end of line {last}: no ']' after the last value)"
        return f"{what} (at the end of the document, line {last})"
    line, col = int(match["line"]), int(match["col"])
    if what == "Unclosed array" and not lines[line - 1][: col - 1].strip():
        before = "\n".join(lines[: line - 1]).rstrip()
        end_line = before.count("\n") + 1
        end_col = len(before) - before.rfind("\n")
        return f"{what} (at line {end_line}, column {end_col}: no ']' after the last value)"
    return f"{what} (at line {line}, column {col})"


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write ``doc`` as JSON to ``path``: to a temporary file in the same folder, flushed to
    disk, then renamed over ``path`` (atomic on POSIX), so a reader sees the old file or the
    new one, never a part of one, even when the writer is interrupted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(doc, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_results(path: Path, settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The results at ``path`` (a JSON object with a ``settings`` key) when they were made
    with ``settings``; None when there is no file yet.

    Raises:
        NasError: in one line, naming the first setting that differs, when the file holds
            results of other settings or none recorded, so that a resumed benchmark never
            mixes them.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NasError(f"cannot read results {path}: {exc}") from None
    recorded = doc.get("settings") if isinstance(doc, dict) else None
    if not isinstance(recorded, dict):
        raise NasError(f"{path} holds results without their settings; choose another --out")
    wanted = json.loads(json.dumps(dict(settings)))  # compared as JSON: tuples are lists
    for key in sorted(set(recorded) | set(wanted)):
        if recorded.get(key) != wanted.get(key):
            raise NasError(
                f"{path} holds results made with {key}={recorded.get(key)!r}, not "
                f"{wanted.get(key)!r}; give the same settings to resume, or another --out"
            )
    found: dict[str, Any] = doc
    return found
