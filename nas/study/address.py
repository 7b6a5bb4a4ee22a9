"""Where a study lives: its storage URL and name, parsed once.

Search, fidelity and the read-only commands (train-winners, export, report, dashboard) all
name a study by a :class:`StudyAddress`. It checks the URL once, knows its backend, hides its
password in messages, holds the database's set-up lock and opens the storage.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

EXAMPLE_URLS = "sqlite:///studies/demo.db or postgresql+psycopg://user:password@host:5432/dbname"


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
        try:
            parsed = make_url(self.url)
        except sqlalchemy.exc.ArgumentError:
            raise StorageError(
                f"cannot parse storage URL {self.url!r}; use e.g. {EXAMPLE_URLS}"
            ) from None
        try:
            parsed.get_dialect()
        except sqlalchemy.exc.NoSuchModuleError:
            raise StorageError(
                f"unknown database kind {parsed.drivername!r} in storage URL "
                f"{parsed.render_as_string(hide_password=True)!r}; use e.g. {EXAMPLE_URLS}"
            ) from None
        except ImportError as exc:
            raise StorageError(
                f"the database driver for {parsed.drivername!r} is not installed ({exc})"
            ) from None
        object.__setattr__(self, "parsed", parsed)

    @classmethod
    def of(cls, storage: str | None, name: str) -> StudyAddress:
        """``storage`` (a URL), else the default SQLite file ``studies/NAME.db``."""
        return cls(storage or sqlite_url(default_storage_path(name)), name)

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
    ) -> RDBStorage:
        """The study database's storage (created if needed unless ``must_exist``); see
        :func:`nas.study.storage.open_storage`. ``locked``: the caller holds :meth:`lock`."""
        return open_storage(
            self.url,
            grace_period=grace_period,
            must_exist=must_exist,
            retry_seconds=retry_seconds,
            on_retry=on_retry,
            locked=locked,
        )

    def peek_attr(self, key: str) -> Any:
        """The study's user attribute ``key`` without creating or locking anything: None when
        the database, its schema, the study or the attribute does not exist."""
        import optuna

        from nas.study.record import StudyRecord

        if not self.exists():
            return None
        try:
            storage = RDBStorage(self.url, skip_table_creation=True, skip_compatibility_check=True)
        except Exception:  # no schema yet, or no database: nothing recorded
            return None
        try:
            study = optuna.load_study(study_name=self.name, storage=storage)
            return StudyRecord(study).get(key)
        except (KeyError, sqlalchemy.exc.SQLAlchemyError):
            return None
        finally:
            storage.engine.dispose()

    @contextlib.contextmanager
    def locked_storage(self, **kwargs: Any) -> Iterator[RDBStorage]:
        """Open the storage under the set-up lock and keep holding it: what workers started
        together must do once (create the schema, the study and its record) happens inside,
        one process after the other, with one lock per start."""
        with self.lock():
            yield self.open(locked=True, **kwargs)
