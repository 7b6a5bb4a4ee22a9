"""Reading the project's TOML files (space files, study files) with one-line errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from nas.errors import NasError


def read_toml(path: Path, what: str, error: type[NasError] = NasError) -> dict[str, Any]:
    """Parse the TOML file ``path`` (a ``what``, for messages); raises ``error`` when it
    cannot be read or parsed."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path} is not valid TOML: {exc}") from None
