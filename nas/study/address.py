"""Where a study lives: its storage URL and name, parsed once.

Search, fidelity and the read-only commands (train-winners, export, report, dashboard) all
name a study by a :class:`StudyAddress`. It checks the URL once, knows its backend, hides its
password in messages, holds the database's set-up lock, opens the storage, and loads the
study there or creates it for its objectives (:func:`create_study`, the one construction of
a study that ``nas`` optimises).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage
from sqlalchemy.engine import URL, make_url

from nas.errors import StorageError
from nas.study.storage import (
    DEFAULT_DB_RETRY,
    default_storage_path,
    exclusive,
    open_storage,
    sqlite_url,
)
from nas.units import plural

EXAMPLE_URLS = "sqlite:///studies/demo.db or postgresql+psycopg://user:password@host:5432/dbname"

T = TypeVar("T")


@dataclass(frozen=True)
class StudyAddress:
    """A study's storage URL and name.

    Raises:
        StorageError: (on construction) for a URL that cannot be parsed or names a database
            kind SQLAlchemy does not know, in one line.
    """

    url: str
    name: str
    parsed: URL = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.url.strip():
            raise StorageError(
                "the storage URL is empty (an unset variable?); give one, e.g. "
                f"{EXAMPLE_URLS}, or leave it out for studies/{self.name}.db"
            )
        try:
            parsed = make_url(self.url)
        except sqlalchemy.exc.ArgumentError:
            hint = f"use e.g. {EXAMPLE_URLS}"
            if not re.match(r"[A-Za-z][\w+.-]*:", self.url):  # no scheme: a path, say its URL
                path = Path(self.url).expanduser()
                hint = f"for the file {path}, give {sqlite_url(path)}"
            raise StorageError(f"cannot parse storage URL {self.url!r}; {hint}") from None
        try:
            parsed.get_dialect().import_dbapi()  # the driver's module, imported once here
        except sqlalchemy.exc.NoSuchModuleError:
            raise StorageError(
                f"unknown database kind {parsed.drivername!r} in storage URL "
                f"{parsed.render_as_string(hide_password=True)!r}; use e.g. {EXAMPLE_URLS}"
            ) from None
        except ImportError as exc:
            installed = " (nas installs psycopg: postgresql+psycopg://...)"
            hint = installed if parsed.get_backend_name() == "postgresql" else ""
            raise StorageError(
                f"the database driver for {parsed.drivername!r} is not installed ({exc}); "
                f"install it, or name one that is{hint}"
            ) from None
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            raise StorageError(
                f"storage URL {self.url!r} names no database file, so SQLite would keep the "
                "study in memory and lose it when the run ends; name a file, e.g. "
                "sqlite:///studies/demo.db"
            )
        object.__setattr__(self, "parsed", parsed)

    @classmethod
    def of(cls, storage: str | None, name: str) -> StudyAddress:
        """``storage`` (a URL), else the default SQLite file ``studies/NAME.db``."""
        return cls(sqlite_url(default_storage_path(name)) if storage is None else storage, name)

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql``, ..."""
        return str(self.parsed.get_backend_name())

    @property
    def shared(self) -> bool:
        """Whether workers on other machines can reach it (not SQLite)."""
        return self.backend != "sqlite"

    @property
    def safe(self) -> str:
        """The URL with its password hidden, for messages."""
        return str(self.parsed.render_as_string(hide_password=True))

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (None: another backend, or an in-memory database)."""
        database = self.parsed.database
        if self.backend != "sqlite" or not database or database == ":memory:":
            return None
        return Path(database)

    def exists(self) -> bool:
        """False only for a SQLite file that is not there yet (nothing to read)."""
        path = self.sqlite_path
        return path is None or path.exists()

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """The database's set-up lock (see :func:`nas.study.storage.exclusive`)."""
        return exclusive(self.url)

    def open(
        self,
        *,
        grace_period: int = 60,
        retry_seconds: float = DEFAULT_DB_RETRY,
        on_retry: Callable[[str], None] | None = None,
        must_exist: bool = False,
        locked: bool = False,
        read_only: bool = False,
    ) -> RDBStorage:
        """The study database's storage (created if needed unless ``must_exist``); see
        :func:`nas.study.storage.open_storage`. ``locked``: the caller holds :meth:`lock`;
        ``read_only``: for a command that never writes (the database must exist)."""
        return open_storage(
            self.url,
            grace_period=grace_period,
            must_exist=must_exist or read_only,
            retry_seconds=retry_seconds,
            on_retry=on_retry,
            locked=locked,
            read_only=read_only,
        )

    def peek_devices(self) -> dict[str, int]:
        """Where the study's trained trials trained (those ``--trials`` counts, as the
        summary does), with how many each (empty: no study, or none trained), read without
        creating or locking anything."""
        from nas.study.record import TrialRecord

        def count(study: optuna.Study) -> dict[str, int]:
            devices: dict[str, int] = {}
            for t in study.get_trials(deepcopy=False):
                device = TrialRecord(t).device
                if device and TrialRecord(t).is_trained:
                    devices[device] = devices.get(device, 0) + 1
            return devices

        return self._peek(count, {})

    def peek_attr(self, key: str) -> Any:
        """The study's user attribute ``key`` without creating or locking anything: None when
        the database, its schema, the study or the attribute does not exist."""
        from nas.study.record import StudyRecord

        return self._peek(lambda study: StudyRecord(study).get(key), None)

    def _peek(self, read: Callable[[optuna.Study], T], default: T) -> T:
        """``read`` of the study, opened without creating or locking anything; ``default``
        when the database, its schema or the study does not exist. A shared database that
        does not answer is the one-line error, not "nothing there"."""
        if not self.exists():
            return default
        try:
            storage = RDBStorage(self.url, skip_table_creation=True, skip_compatibility_check=True)
        except Exception as exc:  # no schema yet, or no database: nothing recorded
            self._raise_if_unreachable(exc)
            return default
        try:
            return read(optuna.load_study(study_name=self.name, storage=storage))
        except Exception as exc:  # no study, no tables yet: nothing recorded
            self._raise_if_unreachable(exc)
            if isinstance(
                exc, KeyError | sqlalchemy.exc.SQLAlchemyError | optuna.exceptions.OptunaError
            ):
                return default
            raise
        finally:
            storage.engine.dispose()

    def _raise_if_unreachable(self, exc: BaseException) -> None:
        """Raise the one-line error when ``exc`` (or what caused it) is a server that does not
        answer (PostgreSQL and other shared databases; a missing SQLite table is not one)."""
        from nas.study.storage import causes, unreachable

        for cause in causes(exc):
            if self.shared and isinstance(cause, sqlalchemy.exc.OperationalError):
                raise unreachable(self.url, cause) from None

    @contextlib.contextmanager
    def locked_storage(self, **kwargs: Any) -> Iterator[RDBStorage]:
        """Open the storage under the set-up lock and keep holding it: what workers started
        together must do once (create the schema, the study and its record) happens inside,
        one process after the other, with one lock per start."""
        with self.lock():
            yield self.open(locked=True, **kwargs)


def create_study(storage: Any, name: str | None, objectives: tuple[str, ...]) -> optuna.Study:
    """A new Optuna study for ``objectives`` (:data:`nas.objectives.METRICS`): accuracy
    maximised, the others minimised, named for optuna-dashboard by
    :attr:`nas.objectives.Metric.dashboard`."""
    from nas.objectives import metrics_of

    metrics = metrics_of(objectives)
    directions = [m.direction for m in metrics]
    study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    with warnings.catch_warnings():  # set_metric_names is "experimental" since Optuna 3.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([m.dashboard for m in metrics])
    return study


def load_or_create(
    storage: Any, name: str, objectives: tuple[str, ...], key: str
) -> tuple[optuna.Study, bool, dict[str, Any] | None]:
    """The study ``name`` in ``storage`` (created now for ``objectives`` if it does not
    exist), whether it was created, and what it records under ``key`` (None: nothing). Call
    under :meth:`StudyAddress.locked_storage`, so that workers started together create it
    once.

    Raises:
        StorageError: in one line, for a study that optimises other objectives than its
            record says (else than ``objectives`` for a study without one, such as a study
            made without nas).
    """
    from nas.objectives import check_objectives
    from nas.study.record import StudyRecord

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return create_study(storage, name, objectives), True, None
    check_kind(study, key)
    record = StudyRecord(study).get(key)
    record = record if isinstance(record, dict) else None
    recorded = record.get("objectives") if record is not None else None
    check_objectives(study, tuple(recorded) if isinstance(recorded, list) else objectives)
    return study, False, record


def check_kind(study: optuna.Study, key: str) -> None:
    """Refuse a study that another kind of nas run made (a search study named to ``nas
    fidelity``, a fidelity study to ``nas search``) before anything is written to it; ``key``:
    the record of the kind wanted.

    Raises:
        StorageError: in one line, naming what the study is.
    """
    from nas.study.record import FIDELITY_SETTINGS, SEARCH_SETTINGS, StudyRecord

    kinds = {SEARCH_SETTINGS: "search", FIDELITY_SETTINGS: "fidelity"}
    record = StudyRecord(study)
    for other, kind in kinds.items():
        if other != key and record.get(other) is not None:
            raise StorageError(
                f"study {study.study_name!r} is a {kind} study (nas {kind} made it); choose "
                "another --study"
            )
    if record.get(key) is not None:  # one of its own kind: its trials are not read here
        return
    trials = len(study.get_trials(deepcopy=False))
    if trials:  # an Optuna study of the user's own (nas.suggest)
        raise StorageError(
            f"study {study.study_name!r} holds {plural(trials, 'trial')} that no nas "
            f"{kinds[key]} ran (your own Optuna study), and nas does not add its trials to "
            "them; choose another --study"
        )
