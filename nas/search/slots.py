"""Training slots: how many workers on many machines train exactly ``--trials`` candidates.

A study may train ``--trials`` candidates in all. Each is one row of the table
``nas_training_slots`` in the study's own database (slot numbers 0..N-1, the primary key
with the study name), so claiming one is a single INSERT that either succeeds or violates
the key: atomic on SQLite and PostgreSQL alike, with no lock to forget.

A worker *reserves* a free slot before it samples, keeps it while candidates are rejected,
and *binds* it to the trial it trains. A slot is freed when its trial fails (a NaN, an
out-of-memory error, Ctrl-C, or a worker that stopped sending heartbeats), or when an unbound
reservation has not been refreshed for the grace period (its worker died while sampling).
Finished and early-stopped trials keep their slots: they are the study's trained trials.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from nas.study.storage import worker_id

METADATA = sa.MetaData()
SLOTS = sa.Table(
    "nas_training_slots",
    METADATA,
    sa.Column("study_name", sa.String(512), primary_key=True),
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("trial_number", sa.Integer, nullable=True),
    sa.Column("worker", sa.String(256), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)


class TrainingSlots:
    """The slots of one study.

    Args:
        engine: the study database's SQLAlchemy engine.
        study_name: the study.
        total: ``--trials``, the number of slots.
        grace_period: seconds after which an unrefreshed reservation is freed.
    """

    def __init__(self, engine: Engine, study_name: str, total: int, grace_period: float) -> None:
        self.engine = engine
        self.study = study_name
        self.total = total
        self.grace = grace_period
        self.worker = worker_id()
        METADATA.create_all(engine, checkfirst=True)

    def _where(self) -> sa.ColumnElement[bool]:
        return SLOTS.c.study_name == self.study

    def held(self) -> list[tuple[int, int | None, str]]:
        """(slot, trial number or None, worker) of every held slot."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(SLOTS.c.slot, SLOTS.c.trial_number, SLOTS.c.worker).where(self._where())
            )
            return [(int(r[0]), r[1], str(r[2])) for r in rows]

    def free_failed(self, failed_trials: Iterable[int]) -> int:
        """Free the slots of failed trials and stale reservations; returns how many."""
        failed = list(failed_trials)
        stale = time.time() - self.grace
        with self.engine.begin() as conn:
            freed = 0
            if failed:
                freed += conn.execute(
                    sa.delete(SLOTS).where(self._where(), SLOTS.c.trial_number.in_(failed))
                ).rowcount
            freed += conn.execute(
                sa.delete(SLOTS).where(
                    self._where(), SLOTS.c.trial_number.is_(None), SLOTS.c.updated_at < stale
                )
            ).rowcount
        return int(freed)

    def reserve(self) -> int | None:
        """Claim a free slot for this worker; None when all ``total`` are held."""
        taken = {slot for slot, _, _ in self.held()}
        for slot in range(self.total):
            if slot in taken:
                continue
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        sa.insert(SLOTS).values(
                            study_name=self.study,
                            slot=slot,
                            trial_number=None,
                            worker=self.worker,
                            updated_at=time.time(),
                        )
                    )
                return slot
            except sa.exc.IntegrityError:  # another worker took it first
                continue
        return None

    def refresh(self, slot: int) -> bool:
        """Keep a reservation alive; False if it was freed meanwhile."""
        with self.engine.begin() as conn:
            updated = conn.execute(
                sa.update(SLOTS)
                .where(self._where(), SLOTS.c.slot == slot, SLOTS.c.worker == self.worker)
                .values(updated_at=time.time())
            ).rowcount
        return bool(updated)

    def bind(self, slot: int, trial_number: int) -> bool:
        """Dedicate a reservation to a trial; False if the reservation was lost."""
        with self.engine.begin() as conn:
            updated = conn.execute(
                sa.update(SLOTS)
                .where(
                    self._where(),
                    SLOTS.c.slot == slot,
                    SLOTS.c.worker == self.worker,
                    SLOTS.c.trial_number.is_(None),
                )
                .values(trial_number=trial_number, updated_at=time.time())
            ).rowcount
        return bool(updated)

    def release(self, slot: int) -> None:
        """Free a slot of this worker (its trial failed, or it stops searching)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(SLOTS).where(
                    self._where(), SLOTS.c.slot == slot, SLOTS.c.worker == self.worker
                )
            )
