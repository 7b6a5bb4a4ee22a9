"""Lazy package attributes (PEP 562), so that ``import nas`` and the CLI start instantly.

A package lists which of its public names live in which module; the module is imported the
first time one of them is used. ``nas --help`` then never imports torch, fvcore or Optuna.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of the package whose ``globals()`` is ``namespace``;
    ``exports`` maps a public name to the module that defines it (``{"ArchConfig":
    "nas.config"}``). A name, once imported, is cached in the package's namespace. A
    subpackage or module is imported when first named too (``nas.search.events.LogMonitor``
    after a plain ``import nas``), as it would be after importing it."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None and importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
