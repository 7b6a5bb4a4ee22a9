"""A small name -> object registry shared by every pluggable kind of thing.

Attention modules, joins, blocks, presets, samplers and data sets each have one
:class:`Registry`. Names are unique (registering a name twice is a bug and raises), and an
unknown name raises a :class:`~nas.errors.NasError` that lists the valid ones.

A registry whose entries live in a heavy module (data-set loaders need torch, samplers need
Optuna) is declared light: its names up front and the module that registers them
(``home``). Its names then serve ``--help`` and argument checks at no cost, and the module is
imported on the first lookup of an entry, which must register exactly the declared names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from nas.errors import NasError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind, e.g. ``ATTENTION["cbam"]`` -> the CBAM class."""

    def __init__(self, kind: str, *, names: Sequence[str] = (), home: str | None = None) -> None:
        """A registry of ``kind`` (used in messages: "unknown data set 'x'").

        Args:
            names: the names that ``home`` registers, for a registry declared light.
            home: the module whose import registers the entries, imported on first lookup.
        """
        if bool(names) != bool(home):
            raise ValueError("a light registry needs both its names and its home module")
        self.kind = kind
        self._items: dict[str, T] = {}
        self._declared = tuple(names)
        self._home = home

    def _load(self) -> dict[str, T]:
        """The entries, importing the home module the first time."""
        if self._home is not None:
            home, self._home = self._home, None
            importlib.import_module(home)
            if set(self._items) != set(self._declared):
                raise RuntimeError(
                    f"{home} registers {self.kind}s {sorted(self._items)}, but the registry "
                    f"declares {sorted(self._declared)}"
                )
        return self._items

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers the decorated object under ``name``."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``; refuses duplicates."""
        if name in self._items:
            raise KeyError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def remove(self, name: str) -> T:
        """Unregister ``name`` and return its entry (a plugin unloaded, a test's own entry)."""
        return self._load().pop(name)

    def __getitem__(self, name: str) -> T:
        if not isinstance(name, str):  # None, a number: one sentence, not difflib's TypeError
            raise NasError(f"{self.kind} must be a name, one of {', '.join(self)}; got {name!r}")
        try:
            return self._load()[name]
        except KeyError:
            hint = did_you_mean(name, list(self))
            raise NasError(
                f"unknown {self.kind} {name!r}" + (hint or f"; valid: {', '.join(self)}")
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def names(self) -> list[str]:
        """Registered names in registration order (declared ones: without importing)."""
        return list(self._declared) if self._home is not None else list(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, object) pairs in registration order."""
        return list(self._load().items())
