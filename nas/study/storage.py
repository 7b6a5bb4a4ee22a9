"""Study storage: SQLite by default (embedded), PostgreSQL for many workers, via SQLAlchemy.

Every RDB storage runs with heartbeats: a trial whose worker died is failed by any worker
once its heartbeat is older than the grace period, and retried once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import optuna
import sqlalchemy
import sqlalchemy.exc
import sqlalchemy.pool
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial
from sqlalchemy.engine import make_url

from nas.errors import StorageError
from nas.study import _optuna
from nas.study.record import RETRY_OF, TrialRecord, retry_results, write_results

T = TypeVar("T")

#: Seconds a lost database is waited for, retrying with backoff, before giving up.
DEFAULT_DB_RETRY = 60.0

#: Where studies live when no --storage URL is given.
STUDIES_DIR = Path("studies")


def worker_id(pid: int | None = None) -> str:
    """``host:pid`` of this process (or of process ``pid`` on this host), recorded on its
    slots and trials."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def default_storage_path(study: str) -> Path:
    """The SQLite file of ``study`` when no --storage URL is given: ``studies/STUDY.db``."""
    return STUDIES_DIR / f"{study}.db"


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def safe_url(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _prepare_sqlite(url: str) -> None:
    """Create the folder of a SQLite file (``studies/``) where its own parent exists, and
    check that it can be written; a path missing more than that folder is taken for a typo
    (``sqlite:////nonexist/dir/x.db``) and refused, not made."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    folder = Path(database).expanduser().resolve().parent
    if not folder.parent.is_dir():
        raise StorageError(
            f"the folder {folder.parent} of the study database {database} does not exist; "
            "create it, or pass --storage sqlite:///PATH in a folder that does"
        )
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the study folder {folder} ({exc.strerror}); "
            "pass --storage sqlite:///PATH somewhere writable"
        ) from None
    target = folder / Path(database).name
    writable = os.access(target, os.W_OK) if target.exists() else os.access(folder, os.W_OK)
    if not writable:
        raise StorageError(
            f"the study database {target} cannot be written (read-only folder?); "
            "pass --storage sqlite:///PATH somewhere writable"
        )


#: The PostgreSQL advisory lock under which a process creates Optuna's schema, so that
#: workers started at the same instant on an empty database create it once.
SCHEMA_LOCK = 0x6E61_7301

#: Tries at opening a database whose schema another process is creating at the same time.
SCHEMA_TRIES = 8


def open_storage(
    url: str,
    *,
    grace_period: int = 60,
    must_exist: bool = False,
    retry_seconds: float = DEFAULT_DB_RETRY,
    on_retry: Callable[[str], None] | None = None,
    locked: bool = False,
    read_only: bool = False,
) -> RDBStorage:
    """Open (creating if needed) the study database at ``url`` with heartbeats on.

    Workers started together on an empty database create Optuna's schema once: on
    PostgreSQL under an advisory lock, and on any database a creation that loses a race
    (a duplicate table, type or version row) is retried with backoff.

    Args:
        url: an SQLAlchemy URL, e.g. ``sqlite:///studies/demo.db`` or
            ``postgresql+psycopg://user:pass@host/db``.
        grace_period: seconds without a heartbeat after which a running trial is failed.
        must_exist: for commands that only read a study: a SQLite file that does not exist
            is an error, not a new empty database.
        retry_seconds: how long a database that goes away is waited for (see
            :class:`ResilientRDBStorage`).
        on_retry: told once per lost call, when retrying starts.
        locked: the caller holds the set-up lock (:func:`exclusive`) already.
        read_only: for commands that never write (report, export): an existing SQLite file
            is opened as it is, without the set-up lock's file or creating anything, so a
            study on a read-only disk (an archive, a shared mount) can still be read.

    Raises:
        StorageError: when the URL is malformed or the database cannot be reached, with the
            real cause.
    """
    backend, engine_kwargs = _engine_options(url, must_exist, read_only)
    as_is = read_only and backend == "sqlite"  # a file on a read-only disk: no lock file
    for attempt in range(SCHEMA_TRIES):
        try:
            with contextlib.nullcontext() if locked or as_is else exclusive(url, engine_kwargs):
                storage = _with_heartbeats(url, engine_kwargs, grace_period, as_is)
            storage.retry_seconds = retry_seconds
            storage.on_retry = on_retry
            return storage
        except OPEN_FAILURES as exc:
            if attempt + 1 < SCHEMA_TRIES and _lost_race(exc, backend):
                time.sleep(0.05 * 2**attempt * (1 + random.random()))
                continue
            verb = "reach" if isinstance(exc, sqlalchemy.exc.OperationalError) else "open"
            raise StorageError(
                f"cannot {verb} the study database {safe_url(url)}: {_cause(exc)}"
            ) from None
        except RuntimeError as exc:  # Optuna's schema of another version
            raise StorageError(
                f"the study database {safe_url(url)} was written by another version of Optuna "
                f"({_cause(exc)})"
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _with_heartbeats(
    url: str, engine_kwargs: dict[str, Any], grace_period: int, read_only: bool = False
) -> ResilientRDBStorage:
    """The storage with heartbeats on and a dead worker's trial retried once (``read_only``:
    Optuna's schema is not created). Optuna calls both "experimental"; that warning is for
    ``nas``, not for its users, so it is not shown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return ResilientRDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            skip_table_creation=read_only,
            heartbeat_interval=max(1, min(10, grace_period // 3)),
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryStaleTrial(grace_period),
        )


def _engine_options(
    url: str, must_exist: bool, read_only: bool = False
) -> tuple[str, dict[str, Any]]:
    """The database kind of ``url`` and its engine options; a SQLite file's folder is made
    (and checked writable, unless ``read_only``), or its absence refused with
    ``must_exist``.

    Raises:
        StorageError: for a URL that cannot be parsed or a missing database.
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(
            f"cannot parse storage URL {url!r}; use e.g. sqlite:///studies/demo.db or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if must_exist and database and database != ":memory:" and not Path(database).exists():
            raise StorageError(f"the study database {database} does not exist")
        if not read_only:
            _prepare_sqlite(url)
    engine_kwargs: dict[str, Any] = {} if backend == "sqlite" else {"pool_pre_ping": True}
    if backend == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    return backend, engine_kwargs


def _lost_race(exc: BaseException, backend: str) -> bool:
    """Whether ``exc`` is another process creating the same schema at the same time: a
    duplicate on any database, or SQLite's lock while another creates."""
    unreachable = isinstance(exc, sqlalchemy.exc.OperationalError)
    may_race = isinstance(exc, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.ProgrammingError)
    return (may_race or (unreachable and backend == "sqlite")) and _lost_creation_race(exc)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, each once (``__cause__``, else ``__context__``)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def unreachable(url: str, exc: BaseException) -> StorageError:
    """The one-line error for a study database that does not answer."""
    return StorageError(f"cannot reach the study database {safe_url(url)}: {_cause(exc)}")


#: What opening a storage raises for a database that cannot be opened as asked (Optuna's
#: StorageInternalError: e.g. no privilege on its tables).
OPEN_FAILURES = (
    sqlalchemy.exc.SQLAlchemyError,
    optuna.exceptions.StorageInternalError,
    ImportError,
    ValueError,
)


def _cause(exc: BaseException) -> str:
    """The first line of the driver's message (not SQLAlchemy's wrapping, nor Optuna's
    ``StorageInternalError`` around it, which only guesses at "invalid data")."""
    if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ is not None:
        exc = exc.__cause__
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return detail[0] if detail else type(exc).__name__


def _lost_creation_race(exc: BaseException) -> bool:
    """Whether ``exc`` is another process creating the same schema at the same time."""
    text = _cause(exc).lower()
    return any(
        s in text
        for s in ("duplicate key", "already exists", "unique constraint", "database is locked")
    )


@contextlib.contextmanager
def exclusive(url: str, engine_kwargs: dict[str, Any] | None = None) -> Iterator[None]:
    """Hold the database's set-up lock: what workers started at the same instant must do
    once (create the schema, create a study and record its settings) happens under it, one
    process after the other. PostgreSQL: an advisory lock; SQLite: a lock on a file beside
    the database (``DB.lock``); anything else: nothing."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        kwargs = engine_kwargs or {"connect_args": {"connect_timeout": 10}}
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **kwargs)
        try:
            try:
                conn = engine.connect()
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK})
            except sqlalchemy.exc.SQLAlchemyError as exc:
                raise unreachable(url, exc) from None
            try:
                yield
            finally:
                with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                    conn.execute(
                        sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK}
                    )
                conn.close()
        finally:
            engine.dispose()
        return
    database = parsed.database
    if backend != "sqlite" or not database or database == ":memory:":
        yield
        return
    _prepare_sqlite(url)  # the lock file lives beside the database, in its folder
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rely on the retries
        yield
        return
    try:
        handle = open(f"{database}.lock", "a")  # noqa: SIM115 (closed below, after the yield)
    except OSError as exc:  # a folder no file can be made in (/proc, a file in the way)
        raise StorageError(
            f"cannot create the lock file {database}.lock beside the study database "
            f"({exc.strerror}); give --storage a folder that can hold files"
        ) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_IN_CALL = threading.local()


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database being away (a restart, a network blip, a lock),
    not a mistake: Optuna wraps such errors in ``StorageInternalError``.

    The whole chain of causes counts: a connection lost while SQLAlchemy loads a
    relationship surfaces as ``PendingRollbackError`` raised while handling the
    ``OperationalError`` that invalidated the connection.
    """
    for cause in causes(exc):
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
    return False


class LostDatabase(StorageError):
    """The study database stayed away for longer than the retry window."""


class ResilientRDBStorage(RDBStorage):
    """Optuna's RDB storage whose calls survive a database that goes away for a while.

    A call that fails because the database cannot be reached is retried with exponential
    backoff (0.5 s doubling to 8 s) for up to ``retry_seconds``; a training run in progress
    goes on meanwhile (its per-epoch writes wait). Past that, :class:`LostDatabase` (one
    sentence for the user); the trial is then left RUNNING and the heartbeat recovery of
    any worker fails and retries it after the grace period. Heartbeats never raise: a lost
    one is the main thread's concern.
    """

    retry_seconds: float = DEFAULT_DB_RETRY
    on_retry: Callable[[str], None] | None = None
    #: Set once the retry window ran out: later calls that cannot reach the database give
    #: up at once instead of waiting a window each on the way out.
    lost: bool = False
    #: Set while some call retries (the main thread's, a heartbeat's): the user hears of an
    #: outage once, not once per thread; a call that gets through ends it.
    away: bool = False

    def record_heartbeat(self, trial_id: int) -> None:
        with contextlib.suppress(Exception):
            _call_with_retry(self, RDBStorage.record_heartbeat, trial_id)


def _call_with_retry(
    storage: ResilientRDBStorage, method: Callable[..., Any], *a: Any, **k: Any
) -> Any:
    if getattr(_IN_CALL, "active", False):  # an outer call retries the whole of it
        return method(storage, *a, **k)
    _IN_CALL.active = True
    try:
        deadline: float | None = None
        delay = 0.5
        while True:
            try:
                result = method(storage, *a, **k)
            except Exception as exc:
                if not _transient(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + storage.retry_seconds
                    told, storage.away = storage.away, True
                    if storage.on_retry is not None and not storage.lost and not told:
                        storage.on_retry(
                            f"lost the study database ({_cause(exc.__cause__ or exc)}); "
                            f"retrying for up to {storage.retry_seconds:g}s"
                        )
                if now >= deadline or storage.lost:
                    storage.lost = True
                    raise LostDatabase(
                        f"lost the study database {safe_url(storage.url)} for more than "
                        f"{storage.retry_seconds:g}s ({_cause(exc.__cause__ or exc)}); the "
                        "running trial is failed and retried by the next worker after the "
                        "grace period; run the command again when the database is back"
                    ) from None
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, 8.0)
            else:
                storage.away = False
                return result
    finally:
        _IN_CALL.active = False


class _Retrying:
    """Calls the methods of ``target`` through the retry of ``storage``."""

    def __init__(self, target: Any, storage: ResilientRDBStorage) -> None:
        self._target, self._retried_by = target, storage

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return _call_with_retry(self._retried_by, lambda _: attr(*args, **kwargs))

        return call


def with_retry(target: T, storage: RDBStorage) -> T:
    """``target`` (something that runs its own SQL on the study database, e.g. the training
    slots) with its calls retried like the storage's own while the database is away."""
    if not isinstance(storage, ResilientRDBStorage):
        return target
    return cast(T, _Retrying(target, storage))


def _retrying(name: str) -> Callable[..., Any]:
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def call(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return _call_with_retry(self, method, *args, **kwargs)

    return call


#: RDBStorage's calls that touch the database (what BaseStorage and BaseHeartbeat define).
_DATABASE_CALLS = (
    "check_trial_is_updatable", "create_new_study", "create_new_trial", "delete_study",
    "get_all_studies", "get_all_trials", "get_best_trial", "get_n_trials",
    "get_study_directions", "get_study_id_from_name", "get_study_name_from_id",
    "get_study_system_attrs", "get_study_user_attrs", "get_trial",
    "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id", "get_trial_param",
    "get_trial_params", "get_trial_system_attrs", "get_trial_user_attrs",
    "set_study_system_attr", "set_study_user_attr", "set_trial_intermediate_value",
    "set_trial_param", "set_trial_state_values", "set_trial_system_attr",
    "set_trial_user_attr", _optuna.STALE_TRIAL_IDS,
)  # fmt: skip
for _name in _DATABASE_CALLS:
    setattr(ResilientRDBStorage, _name, _retrying(_name))


class RetryStaleTrial(RetryHeartbeatStaleTrialCallback):
    """Retry a trial whose worker died, once, and say so on the failed trial.

    The failed trial gets ``fail_reason`` (its worker, the grace period, the retry's number)
    and ``retried_as``; the retry (a WAITING copy with the same parameters) is trained by
    whichever worker asks next, and carries Optuna's ``failed_trial`` system attribute.
    """

    def __init__(self, grace_period: int) -> None:
        super().__init__(max_retry=1)
        self.grace_period = grace_period

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        before = {t.number for t in study.get_trials(deepcopy=False)}
        super().__call__(study, trial)
        copy = next(
            (
                t
                for t in study.get_trials(deepcopy=False)
                if t.number not in before and TrialRecord(t).retry_of is not None
            ),
            None,
        )
        retry = None if copy is None else copy.number
        if copy is not None:  # Optuna copied the trial's own retry_of (a retry's retry)
            write_results(study, copy, {RETRY_OF: trial.number})
        worker = TrialRecord(trial).worker
        who = f"worker {worker}" if worker else "its worker"
        tail = f"retried as trial {retry}" if retry is not None else "not retried again"
        reason = f"{who} sent no heartbeat for {self.grace_period}s (killed or pre-empted); {tail}"
        write_results(study, trial, retry_results(reason, retry))


def load_study(storage: RDBStorage, name: str) -> optuna.Study:
    """Load an existing study, or say which studies the database holds."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        listing = f"; it holds: {', '.join(names)}" if names else "; it holds no study"
        raise StorageError(f"no study named {name!r} in {safe_url(storage.url)}{listing}") from None
