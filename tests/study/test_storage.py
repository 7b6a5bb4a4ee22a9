"""Which storage errors mean "the database is away" (retried) and which are mistakes."""

from __future__ import annotations

import optuna
import sqlalchemy.exc

from nas.study.storage import _transient


def _raised(make_outer: type[BaseException], inner: BaseException) -> BaseException:
    """``make_outer`` raised while handling ``inner``, then wrapped as Optuna wraps it."""
    try:
        try:
            raise inner
        except BaseException:
            raise make_outer("Can't reconnect until invalid transaction is rolled back")  # noqa: B904 (an implicit context, as SQLAlchemy raises it)
    except BaseException as outer:
        try:
            raise optuna.exceptions.StorageInternalError("wrapped") from outer
        except optuna.exceptions.StorageInternalError as wrapped:
            return wrapped


def test_a_pending_rollback_after_a_lost_connection_is_transient() -> None:
    # What a server restart during a relationship load looks like (seen in the chaos test).
    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed"))
    assert _transient(_raised(sqlalchemy.exc.PendingRollbackError, lost))


def test_a_pending_rollback_after_a_mistake_is_not_transient() -> None:
    clash = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert not _transient(_raised(sqlalchemy.exc.PendingRollbackError, clash))


def test_a_plain_operational_error_is_transient_and_a_value_error_is_not() -> None:
    lost = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed"))
    assert _transient(lost)
    assert not _transient(ValueError("no"))


def test_an_outage_is_told_once_however_many_threads_retry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The main thread and the heartbeat thread both retry while the database is away: the
    user reads "lost the study database" once per outage, not once per thread."""
    import threading

    from nas.study.storage import ResilientRDBStorage, _call_with_retry

    storage = ResilientRDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    told: list[str] = []
    storage.on_retry, storage.retry_seconds = told.append, 30.0
    back = threading.Event()
    both_retrying = threading.Barrier(3)

    def call(_: object) -> str:
        if not back.is_set():
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed"))
        return "ok"

    def away(_: object) -> str:  # fails until both threads have failed once
        try:
            return call(_)
        finally:
            if not back.is_set():
                both_retrying.wait(timeout=10)

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(_call_with_retry(storage, away)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    both_retrying.wait(timeout=10)
    back.set()
    for t in threads:
        t.join(timeout=20)
    assert results == ["ok", "ok"]
    assert len(told) == 1 and told[0].startswith("lost the study database (server closed)")
    back.clear()  # a second outage, after the database came back, is told again
    done = threading.Timer(0.2, back.set)
    done.start()
    assert _call_with_retry(storage, call) == "ok"
    assert len(told) == 2
