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
