"""Errors a user can cause.

Every exception raised for a user's mistake (a bad flag, a bad space file, missing data, an
unreachable database) derives from :class:`NasError`. The command line prints its message as
one line on stderr and exits with :attr:`NasError.exit_code`; nothing else is shown.
"""

from __future__ import annotations

from collections.abc import Iterable


class NasError(Exception):
    """A mistake the user can fix; its message is one clear sentence."""

    exit_code: int = 2


class ConfigError(NasError, ValueError):
    """An architecture config that cannot be built."""


class SpaceError(NasError, ValueError):
    """A malformed search-space file; the message lists every mistake, one per line."""


class DataError(NasError):
    """Missing, empty or unreadable data."""


class StorageError(NasError):
    """A study database that cannot be reached or does not hold what was asked for."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, or a signal turned into it (SIGTERM: a pre-empted machine, a stopped job);
    ``signal`` names it, so a failed trial records which."""

    def __init__(self, signal: str = "SIGINT") -> None:
        super().__init__(signal)
        self.signal = signal


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of ``exc``'s message (at most ``limit`` characters), else its type's
    name: what a one-sentence refusal quotes of an error from below."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option closest to ``word`` (difflib's ratio at least 0.6), else None."""
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``"; did you mean --param-limit?"`` for the option closest to ``word``
    (:func:`closest`), else ``""``: the tail of an error about an unknown name."""
    close = closest(word, options)
    return f"; did you mean {close}?" if close else ""


def unknown_word(kind: str, word: str, valid: Iterable[str]) -> str:
    """``unknown attention type 'cbma'; did you mean cbam? valid: none, se, ...``: the
    message for one word that is none of ``valid`` (the closest named where one is)."""
    known = list(valid)
    return f"unknown {kind} {word!r}{did_you_mean(word, known) or ';'} valid: {', '.join(known)}"


def check_known(kind: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Refuse names of ``given`` that are not ``valid``, in one line: ``unknown setting(s)
    param_limt; did you mean param_limit? valid: ...``.

    Raises:
        NasError: naming the unknown ones, the closest valid name and every valid one.
    """
    known = list(valid)
    unknown = sorted(set(given) - set(known))
    if unknown:
        hint = did_you_mean(unknown[0], known) or ";"
        raise NasError(f"unknown {kind}(s) {', '.join(unknown)}{hint} valid: {', '.join(known)}")
