"""Searching from Python: what ``nas search`` runs, as an object, and its one entry point.

``nas search`` is a thin shell over :func:`run_search`; users who write Python get the same
through :class:`Search` (``nas.Search``)::

    import nas

    study = nas.Search(
        space="search_spaces/small_cifar.toml", param_limit="150k", dataset="fake",
        trials=4, proxy_epochs=1, proxy_subset=256, proxy_val=128, device="cpu",
        storage="sqlite:///demo.db", study="demo",
    ).run()                                  # an optuna.Study, continued when run again

Settings are given by their names (``nas search --help`` lists them, ``param_limit`` for
``--param-limit``), each value parsed like its flag (``"150k"``), or as a study file, or as
a :class:`~nas.search.settings.SearchSettings`. They are resolved against the study's record
exactly as on the command line.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna

from nas.errors import NasError, check_known
from nas.search.events import SearchMonitor, SilentMonitor
from nas.search.loop import GAVE_UP, Hooks, SearchOutcome, run_opened
from nas.search.settings import SearchSettings
from nas.search.study import RECORD_KEY, open_search, search_source
from nas.settings import PYTHON, SettingsSource, declared, named_in_python, read_table

Say = Callable[[str], None]


def source_of(
    study_file: str | Path | None = None,
    settings: SearchSettings | None = None,
    given: Mapping[str, Any] | None = None,
) -> SettingsSource:
    """What a search from Python was given: a study file's ``[search]`` table, settings built
    as a dataclass, and settings by name (parsed like their flags), the last winning.

    Raises:
        NasError: for an unknown setting (listing the valid ones) or a malformed value.
    """
    if settings is not None and not isinstance(settings, SearchSettings):
        raise NasError(
            f"settings must be a nas.search.SearchSettings, not a {type(settings).__name__}; give "
            "settings by name instead: nas.Search(param_limit='150k', ...)"
        )
    file = read_table(Path(study_file), "search", SearchSettings) if study_file else {}
    flags = dict(search_source(settings).flags) if settings is not None else {}
    flags.update(parse_given(given or {}))
    return SettingsSource(SearchSettings, RECORD_KEY, flags=flags, file=file, given_as=PYTHON)


def parse_given(given: Mapping[str, Any]) -> dict[str, Any]:
    """Settings by name, each text parsed as its flag parses it (``param_limit="150k"``)."""
    settings = {d.name: d for d in declared(SearchSettings)}
    check_known("setting", given, sorted(settings))
    defaults = SearchSettings()
    out = {}
    for name, value in given.items():
        if isinstance(value, os.PathLike):  # space=Path("search_spaces/small_cifar.toml")
            value = os.fspath(value)
        parse = settings[name].setting.parse
        listed = isinstance(settings[name].value(defaults), tuple)
        if (
            listed
            and isinstance(value, list | tuple)
            and parse is not None
            and all(isinstance(v, str) for v in value)
        ):
            value = ",".join(value)  # objectives=["accuracy", "flops"], parsed as its flag
        try:
            out[name] = parse(value) if parse is not None and isinstance(value, str) else value
        except NasError as exc:
            raise NasError(f"setting {name}: {exc}") from None
    return out


def run_search(
    source: SettingsSource,
    monitor: SearchMonitor,
    *,
    log: Say | None = None,
    hooks: Hooks = Hooks(),  # noqa: B008 (frozen: never changed)
) -> SearchOutcome:
    """Run (or continue) a study until it has enough trained trials, the timeout passes, or
    the user interrupts: one worker here, or ``--workers K`` local processes. Returns how it
    ended (its ``exit_code``: 0, 130 after Ctrl-C or SIGTERM, else the first failing
    worker's).

    The settings are resolved once (:func:`nas.search.study.open_search`), and the device
    is checked before the study database is touched.

    Args:
        hooks: what tests and benchmarks change (the evaluator, the candidates, an extra
            stop), all else as ``nas search`` runs (:class:`nas.search.loop.Hooks`).

    Raises:
        NasError: for bad settings, missing data, a missing device or an unreachable database.
    """
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    placed: dict[str, Any] = {}
    opened = open_search(source, say=say, check=lambda s: placed.update(place(s)))
    if opened.queued:
        say(f"queued presets that fit the limits: {', '.join(opened.queued)}")
    elif opened.settings.enqueue_presets:  # asked for, and nothing to queue: say so
        say(
            f"queued no preset: none lies in space {opened.space.name!r} within the limits "
            "(nas presets lists them)"
        )
    if opened.settings.workers > 1:
        from nas.search.workers import run_workers

        outcome = run_workers(opened, placed["placements"], say)
    else:
        outcome = run_opened(opened, monitor, placed["device"], say, hooks)
    outcome.has_test = opened.data.has_test
    return outcome


def place(settings: SearchSettings) -> dict[str, Any]:
    """Where the run trains: one device, or a placement per worker (``--workers K``).

    Raises:
        NasError: for a device this machine does not have (before anything is created).
    """
    if settings.workers > 1:
        from nas.training.placement import assign_devices

        return {"placements": assign_devices(settings.device, settings.workers)}
    from nas.training import resolve_device

    return {"device": resolve_device(settings.device)}


class Search:
    """A search as ``nas search`` runs it: the same settings, resolved against the study's
    record the same way, in the same study database; :meth:`run` returns the
    ``optuna.Study``, and running it again continues that study::

        study = nas.Search(
            space="search_spaces/small_cifar.toml", param_limit="150k", dataset="fake",
            trials=4, proxy_epochs=1, device="cpu", storage="sqlite:///demo.db", study="demo",
        ).run()
        best = nas.best(study)  # the trial nas export --best picks

    ``trials`` counts the study's trained trials, as ``--trials`` does: a study that has
    them already trains none (a warning says so), and ``trials=8`` trains up to 8 in all.

    Args:
        study_file: a study TOML with a ``[search]`` table (first, or by this name).
        settings: settings built as a :class:`~nas.search.settings.SearchSettings`, whose
            fields are the settings' own (``limits={"params": 150_000}`` where ``given`` says
            ``param_limit``).
        given: settings by name (``nas search --help`` lists them: ``param_limit`` for
            ``--param-limit``), each parsed like its flag (``param_limit="150k"``); they
            win over the study file.
    """

    def __init__(
        self,
        study_file: str | Path | None = None,
        *,
        settings: SearchSettings | None = None,
        **given: Any,
    ) -> None:
        with _in_python_words():  # a value no study could take is refused here, at once
            self.source = source_of(study_file, settings, given)
            self.source.resolve(None, "new")

    def run(self, monitor: SearchMonitor | None = None, log: Say | None = None) -> optuna.Study:
        """Run (or continue) the study; returns it. Quiet unless ``monitor`` and ``log`` say
        otherwise (:class:`nas.search.events.LogMonitor` prints a line per event); see
        :meth:`outcome`. ``nas.best(study)`` is the trial ``nas export --best`` picks.

        Raises:
            KeyboardInterrupt: after Ctrl-C, once the study holds the interrupted trial (the
                next run retries it first), so that a script of several searches stops.
            NasError: for bad settings, missing data, an unreachable database, or a
                ``workers`` process that refused to run or crashed (a search that gave up,
                its trials failing in a row, returns the study, which holds why).
        """
        outcome = self._outcome(monitor, log, Hooks())
        if outcome.interrupted:
            raise KeyboardInterrupt(
                f"study {outcome.study.study_name!r}: {outcome.stop_reason}; running it again "
                "continues the study and retries the interrupted trial first"
            )
        if outcome.exit_code not in (0, GAVE_UP):  # a --workers process refused or crashed
            raise NasError(
                f"study {outcome.study.study_name!r}: {outcome.stop_reason} (their messages "
                "are above, on stderr)"
            )
        return outcome.study

    def outcome(
        self,
        monitor: SearchMonitor | None = None,
        log: Say | None = None,
        hooks: Hooks = Hooks(),  # noqa: B008 (frozen: never changed)
    ) -> SearchOutcome:
        """Run (or continue) the study; returns how it ended (counts, front, stop reason).
        ``hooks``: what tests and benchmarks change (:class:`nas.search.loop.Hooks`).

        Unlike :meth:`run`, it returns after Ctrl-C too (``interrupted`` set, ``exit_code``
        130). Optuna's own log lines are held back while it runs (``monitor`` reports the
        trials, as ``nas search`` does); a run that trains nothing because the study already had
        ``trials`` trained trials says so in a :class:`UserWarning` naming the value that
        trains more."""
        return self._outcome(monitor, log, hooks)

    def _outcome(
        self, monitor: SearchMonitor | None, log: Say | None, hooks: Hooks
    ) -> SearchOutcome:
        """:meth:`outcome`, its warning pointed at the caller of :meth:`run` or
        :meth:`outcome`."""
        verbosity = optuna.logging.get_verbosity()
        # the monitor reports failed trials (with their reasons), as nas search does
        optuna.logging.set_verbosity(max(verbosity, optuna.logging.ERROR))
        try:
            with _in_python_words():
                outcome = run_search(
                    self.source, monitor or SilentMonitor(), log=log or _quiet, hooks=hooks
                )
        finally:
            optuna.logging.set_verbosity(verbosity)
        if outcome.had_enough:
            trained, trials = outcome.stats.trained, outcome.settings.trials
            warnings.warn(
                f"study {outcome.study.study_name!r} already had {trained} trained trials, at "
                f"least as many as trials={trials} asks for, so this run trained none: trials "
                f"counts the study's trained trials, not this run's; trials={trained + trials} "
                f"trains {trials} more",
                UserWarning,
                stacklevel=3,
            )
        return outcome


@contextmanager
def _in_python_words() -> Iterator[None]:
    """A :class:`NasError` raised inside names keywords where deeper layers named flags."""
    try:
        yield
    except NasError as exc:
        exc.args = (named_in_python(str(exc), SearchSettings), *exc.args[1:])
        raise


def _quiet(text: str) -> None:
    return None
