"""The throwaway PostgreSQL server of ``tests/pgserver.py``: real binaries, no mocks."""

from __future__ import annotations

import socket
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from tests.pgserver import PostgresServer, find_pg_bin

pytestmark = pytest.mark.postgres


def _storage(url: str) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def _close(storage: optuna.storages.RDBStorage) -> None:
    storage.remove_session()
    storage.engine.dispose()


def test_select_one(postgres: PostgresServer) -> None:
    engine = sqlalchemy.create_engine(postgres.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 1")).scalar_one() == 1
            assert conn.execute(sqlalchemy.text("SELECT current_database()")).scalar_one() == (
                postgres.dbname
            )
            address = conn.execute(sqlalchemy.text("SELECT inet_server_addr()")).scalar_one()
            assert str(address) == "127.0.0.1"
    finally:
        engine.dispose()


def test_optuna_rdb_storage_round_trip(postgres: PostgresServer) -> None:
    url = postgres.create_database("optuna_round_trip")
    storage = _storage(url)
    try:
        study = optuna.create_study(storage=storage, study_name="round-trip", direction="maximize")
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        study.tell(trial, 2 * x)
    finally:
        _close(storage)

    # A second storage, as another worker would open, sees the study and the finished trial.
    other = _storage(url)
    try:
        loaded = optuna.load_study(study_name="round-trip", storage=other)
        assert len(loaded.trials) == 1
        (stored,) = loaded.trials
        assert stored.state == optuna.trial.TrialState.COMPLETE
        assert stored.value == pytest.approx(2 * stored.params["x"])
        assert loaded.best_value == stored.value
    finally:
        _close(other)


def test_databases_are_isolated(postgres: PostgresServer) -> None:
    url_a = postgres.create_database("isolated_a")
    url_b = postgres.create_database("isolated_b")
    assert url_a != url_b
    storage_a, storage_b = _storage(url_a), _storage(url_b)
    try:
        optuna.create_study(storage=storage_a, study_name="only-in-a")
        optuna.create_study(storage=storage_b, study_name="only-in-b")
        names_a = {s.study_name for s in optuna.get_all_study_summaries(storage_a)}
        names_b = {s.study_name for s in optuna.get_all_study_summaries(storage_b)}
        assert names_a == {"only-in-a"}
        assert names_b == {"only-in-b"}
        with pytest.raises(KeyError):
            optuna.load_study(study_name="only-in-a", storage=storage_b)
    finally:
        _close(storage_a)
        _close(storage_b)


def test_create_database_rejects_bad_names(postgres: PostgresServer) -> None:
    with pytest.raises(ValueError, match="database name"):
        postgres.create_database('x"; DROP DATABASE nas; --')


def test_stop_kills_server_and_removes_files() -> None:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not found; install them with .ci/install-postgres")
    server = PostgresServer("short_lived").start()
    root, port = server.root, server.port
    assert root is not None and port is not None
    assert root.is_dir()
    server.stop()
    assert not root.exists()
    assert not server.running
    with socket.socket() as sock, pytest.raises(OSError):
        sock.settimeout(2)
        sock.connect(("127.0.0.1", port))
    server.stop()  # stopping twice is harmless


def test_start_failure_reports_server_log() -> None:
    if find_pg_bin() is None:
        pytest.skip("PostgreSQL server binaries not found; install them with .ci/install-postgres")
    server = PostgresServer(settings={"shared_buffers": "not-a-size"}, start_timeout=20)
    with pytest.raises(RuntimeError, match="server log") as caught:
        server.start()
    assert "shared_buffers" in str(caught.value)
    assert server.root is None and not server.running  # cleaned up after the failure


def test_find_pg_bin_holds_all_binaries() -> None:
    directory = find_pg_bin()
    if directory is None:
        pytest.skip("PostgreSQL server binaries not found")
    for name in ("initdb", "pg_ctl", "postgres"):
        assert (Path(directory) / name).exists()
