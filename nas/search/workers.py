"""``nas search --workers K``: K local worker processes sharing one study.

The parent checks the settings, decodes the data once (children load the cached tensors),
creates the study and queues the presets, then starts K ``nas search`` processes with the
same settings, spread over the GPUs round-robin (several per GPU when K exceeds the GPUs),
or K on the CPU with the cores shared out. Each GPU worker gets ``CUDA_VISIBLE_DEVICES`` set
to its one GPU (picked from the parent's own ``CUDA_VISIBLE_DEVICES`` list when it has one)
and trains on ``--device cuda``, so it sees exactly one device. Their log lines come out
prefixed with the worker number and its GPU; Ctrl-C is passed on to every worker; the
summary prints once at the end. Workers on other machines run the same ``nas search``
command against the same ``--storage`` URL.
"""

from __future__ import annotations

import datetime
import io
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from nas.search.loop import SearchOutcome
from nas.search.study import SearchStudy
from nas.settings import write_table
from nas.study.cleanup import INTERRUPTED
from nas.study.storage import worker_id
from nas.training.placement import Placement, started_message, worker_env

SQLITE_WARNING = (
    "warning: {k} workers on SQLite: Optuna advises against SQLite for parallel work (one "
    "writer at a time, 'database is locked' errors under load). It works for a few local "
    "workers; for more, or for several machines, use PostgreSQL: --storage "
    "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (docs/how-to/many-workers.md)"
)


#: In a worker's environment: the pid of the ``nas search --workers K`` that started it.
PARENT_ENV = "NAS_WORKERS_PARENT"


def follow_parent(poll: float = 0.5, again: float = 5.0) -> None:
    """In a worker of ``--workers K``: when its launcher dies (killed by a scheduler or the
    OOM killer; the workers run in sessions of their own, so nothing else reaches them),
    stop as after SIGTERM: the running trial is recorded as interrupted and retried first on
    the next start, instead of failing on the log pipe nobody reads any more. A thread looks
    every ``poll`` seconds, and a write to the dead pipe stops the worker the same way; the
    SIGTERM is sent again every ``again`` seconds while the worker lives (Python drops an
    interrupt raised inside a finalizer). Call after the SIGTERM handler is installed; does
    nothing in a process no launcher started."""
    parent = os.environ.get(PARENT_ENV, "")
    if not parent.isdigit():
        return
    sent = -math.inf

    def stop() -> None:
        nonlocal sent
        if time.monotonic() - sent >= again:
            sent = time.monotonic()
            os.kill(os.getpid(), signal.SIGTERM)

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(poll)
        while True:
            stop()
            time.sleep(again)

    sys.stderr = _LauncherPipe(sys.stderr, stop)
    threading.Thread(target=watch, name="nas-follow-parent", daemon=True).start()


class _LauncherPipe(io.TextIOBase):
    """A worker's stderr, the pipe its launcher reads: once the launcher is gone, a write
    stops the worker (``stop``) instead of failing its trial with BrokenPipeError."""

    def __init__(self, stream: IO[str], stop: Callable[[], None]) -> None:
        self.stream, self.stop = stream, stop

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self.stop()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self.stop()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()


def _pump(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stderr.write(f"{prefix}{line}")
        sys.stderr.flush()


def run_workers(
    opened: SearchStudy, placements: Sequence[Placement], say: Callable[[str], None]
) -> SearchOutcome:
    """Run a local worker per placement on the study the parent opened; returns how it
    ended, with the exit code (0, 130 after Ctrl-C or SIGTERM, else the first failing
    worker's; 128 + N for one killed by signal N, 137 after kill -9).

    The parent opened the study once (:func:`nas.search.study.open_search`: settings
    resolved against its record, data decoded and cached, presets queued); the workers get
    the effective settings in a study file, so every one runs with the recorded values."""
    k = len(placements)
    since = datetime.datetime.now()
    if not opened.address.shared:
        say(SQLITE_WARNING.format(k=k))
    study, settings = opened.study, opened.settings
    threads = max(1, (os.cpu_count() or 1) // k)
    interrupted: str | None = None  # the signal that stopped the workers
    with tempfile.TemporaryDirectory(prefix="nas-workers-") as tmp:
        study_file = Path(tmp) / "study.toml"
        child = settings.replace(enqueue_presets=False, study=opened.address.name)
        study_file.write_text(write_table(child, "search", skip=("workers", "worker_index")))
        procs: list[subprocess.Popen[str]] = []
        try:
            _start(study_file, placements, threads, procs)
            codes = [p.wait() for p in procs]
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM turned into it by the CLI
            interrupted = "SIGTERM" if _is_sigterm(exc) else "SIGINT"
            for p in procs:
                if p.poll() is None:
                    p.send_signal(getattr(signal, interrupted))
            codes = [p.wait() for p in procs]
    reason = (
        INTERRUPTED[interrupted] if interrupted else f"{k} workers finished with exit codes {codes}"
    )
    code = next((c for c in codes if c != 0), 0)
    code = 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell says
    mine = {worker_id(p.pid) for p in procs}  # as the workers record their trials
    return SearchOutcome.of(
        study, settings, opened.address, since, reason, interrupted is not None, code, mine
    )


def _is_sigterm(exc: BaseException) -> bool:
    return getattr(exc, "signal", "SIGINT") == "SIGTERM"


def _start(
    study_file: Path,
    placements: Sequence[Placement],
    threads: int,
    procs: list[subprocess.Popen[str]],
) -> None:
    """Start one ``nas search`` process per placement on ``study_file``, appending each to
    ``procs`` as it starts (so an interrupt meanwhile reaches the ones already running);
    their stderr lines come out prefixed with the worker and its device."""
    for i, placement in enumerate(placements):
        cmd = [
            sys.executable,
            "-m",
            "nas",
            "search",
            str(study_file),
            "--workers",
            "1",
            "--worker-index",
            str(i),
            "--device",
            placement.device,
            "--quiet",
        ]
        # Own session: a terminal's Ctrl-C reaches each worker once, via the parent.
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**worker_env(placement, threads, os.environ), PARENT_ENV: str(os.getpid())},
            start_new_session=True,
        )
        assert proc.stderr is not None
        threading.Thread(
            target=_pump, args=(proc.stderr, f"[worker {i} {placement.label}] "), daemon=True
        ).start()
        procs.append(proc)
    print(started_message(placements, threads), file=sys.stderr)
