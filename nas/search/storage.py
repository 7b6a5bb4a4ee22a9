"""Study storage: SQLite by default (embedded), PostgreSQL for many workers, via SQLAlchemy.

Every RDB storage runs with heartbeats: a trial whose worker died is failed by any worker
once its heartbeat is older than the grace period, and retried once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial
from sqlalchemy.engine import make_url

from nas.errors import StorageError

#: Where studies live when no --storage URL is given.
STUDIES_DIR = Path("studies")


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
    """Create the folder of a SQLite file and check that it can be written."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    folder = Path(database).expanduser().resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
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


def open_storage(url: str, *, grace_period: int = 60) -> RDBStorage:
    """Open (creating if needed) the study database at ``url`` with heartbeats on.

    Args:
        url: an SQLAlchemy URL, e.g. ``sqlite:///studies/demo.db`` or
            ``postgresql+psycopg://user:pass@host/db``.
        grace_period: seconds without a heartbeat after which a running trial is failed.

    Raises:
        StorageError: when the URL is malformed or the database cannot be reached.
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise StorageError(
            f"cannot parse storage URL {url!r}; use e.g. sqlite:///studies/demo.db or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite(url)
    engine_kwargs: dict[str, Any] = (
        {} if parsed.get_backend_name() == "sqlite" else {"pool_pre_ping": True}
    )
    if parsed.get_backend_name() == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=max(1, min(10, grace_period // 3)),
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryStaleTrial(grace_period),
        )
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = detail[0] if detail else type(exc).__name__
        raise StorageError(f"cannot reach the study database {safe_url(url)}: {reason}") from None


def set_result_attrs(storage: RDBStorage, trial_id: int, values: dict[str, Any]) -> None:
    """Write user attributes onto a *finished* trial (Optuna's API refuses to), as one
    transaction on Optuna's own trial-attribute table."""
    session = storage.scoped_session()
    try:
        for key, value in values.items():
            row = (
                session.query(models.TrialUserAttributeModel)
                .filter_by(trial_id=trial_id, key=key)
                .one_or_none()
            )
            if row is None:
                session.add(
                    models.TrialUserAttributeModel(
                        trial_id=trial_id, key=key, value_json=json.dumps(value)
                    )
                )
            else:
                row.value_json = json.dumps(value)
        session.commit()
    except Exception as exc:
        session.rollback()
        raise StorageError(f"cannot write results of trial {trial_id}: {exc}") from None
    finally:
        session.close()


def rdb_storage(study: optuna.Study) -> RDBStorage:
    """The RDB storage under a study (Optuna wraps it in a cache)."""
    storage = study._storage
    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, RDBStorage):
        raise StorageError("winners can only be recorded in an RDB study storage")
    return backend


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
        retry = next(
            (
                t.number
                for t in study.get_trials(deepcopy=False)
                if t.number not in before and t.system_attrs.get("failed_trial") is not None
            ),
            None,
        )
        worker = trial.user_attrs.get("worker", "its worker")
        tail = f"retried as trial {retry}" if retry is not None else "not retried again"
        set_result_attrs(
            rdb_storage(study),
            trial._trial_id,
            {
                "fail_reason": f"worker {worker} sent no heartbeat for {self.grace_period}s "
                f"(killed or pre-empted); {tail}",
                "retried_as": retry,
            },
        )


def load_study(storage: RDBStorage, name: str) -> optuna.Study:
    """Load an existing study, or say which studies the database holds."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        listing = f"; it holds: {', '.join(names)}" if names else "; it holds no study"
        raise StorageError(f"no study named {name!r} in {safe_url(storage.url)}{listing}") from None
