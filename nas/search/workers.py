"""``nas search --workers K``: K local worker processes sharing one study.

The parent checks the settings, decodes the data once (children load the cached tensors),
creates the study and queues the presets, then starts K ``nas search`` processes with the
same settings: one per GPU round-robin (several per GPU when K exceeds the GPUs), or K on
the CPU with the cores shared out. Their log lines come out prefixed with the worker number;
Ctrl-C is passed on to every worker; the summary prints once at the end. Workers on other
machines run the same ``nas search`` command against the same ``--storage`` URL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import torch
from sqlalchemy.engine import make_url

from nas.search.runner import SearchOutcome, enqueue_presets, open_study, prepare
from nas.search.samplers import make_sampler
from nas.search.settings import SearchSettings
from nas.search.stats import study_stats
from nas.search.storage import open_storage

SQLITE_WARNING = (
    "warning: {k} workers on SQLite: Optuna advises against SQLite for parallel work (one "
    "writer at a time, 'database is locked' errors under load). It works for a few local "
    "workers; for more, or for several machines, use PostgreSQL: --storage "
    "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (README: Running on many GPUs and machines)"
)


def assign_devices(device: str, k: int) -> list[str]:
    """One device per worker: GPUs round-robin when CUDA is asked for and present."""
    if device in ("auto", "cuda") and torch.cuda.is_available():
        n = torch.cuda.device_count()
        return [f"cuda:{i % n}" for i in range(k)]
    if device == "auto":
        return ["cpu"] * k
    return [device] * k


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_study_file(settings: SearchSettings, path: Path) -> None:
    """``settings`` as a study file that ``nas search STUDY_FILE`` reads back."""
    lines = ["[search]"]
    for key, value in settings.to_dict().items():
        if key in ("proxy_subset", "proxy_val") and value is None:
            value = "all"  # None means every image; the file spells it 'all'
        if value is not None and key not in ("workers", "worker_index"):
            lines.append(f"{key} = {_toml_value(value)}")
    path.write_text("\n".join(lines) + "\n")


def _pump(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stderr.write(f"{prefix}{line}")
        sys.stderr.flush()


def run_workers(settings: SearchSettings) -> tuple[SearchOutcome, int]:
    """Run ``settings.workers`` local workers on the study; returns how it ended and the
    exit code (0, 130 after Ctrl-C or SIGTERM, else the first failing worker's)."""
    k = settings.workers
    if make_url(settings.storage_url).get_backend_name() == "sqlite":
        print(SQLITE_WARNING.format(k=k), file=sys.stderr)
    started = time.perf_counter()
    space, data = prepare(settings)
    storage = open_storage(settings.storage_url, grace_period=settings.grace_period)
    study = open_study(
        settings, storage, make_sampler(settings.sampler, settings.seed, settings.trials)
    )
    trained_before = study_stats(study, front=False).trained
    if settings.enqueue_presets:
        enqueue_presets(study, space, settings, data)
    devices = assign_devices(settings.device, k)
    threads = max(1, (os.cpu_count() or 1) // k)
    procs: list[subprocess.Popen[str]] = []
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="nas-workers-") as tmp:
        study_file = Path(tmp) / "study.toml"
        write_study_file(
            settings.replace(enqueue_presets=False, study=study.study_name), study_file
        )
        try:
            for i, device in enumerate(devices):
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
                    device,
                    "--quiet",
                ]
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                # Own session: a terminal's Ctrl-C reaches each worker once, via the parent.
                proc = subprocess.Popen(
                    cmd,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                    start_new_session=True,
                )
                assert proc.stderr is not None
                threading.Thread(
                    target=_pump, args=(proc.stderr, f"[worker {i} {device}] "), daemon=True
                ).start()
                procs.append(proc)
            print(
                f"started {k} workers on {', '.join(devices)} ({threads} CPU threads each)",
                file=sys.stderr,
            )
            codes = [p.wait() for p in procs]
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into it by the CLI
            interrupted = True
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            codes = [p.wait() for p in procs]
    stats = study_stats(study)
    reason = (
        "interrupted by the user (Ctrl-C)"
        if interrupted
        else f"{k} workers finished with exit codes {codes}"
    )
    outcome = SearchOutcome(
        study,
        stats,
        time.perf_counter() - started,
        reason,
        interrupted,
        stats.trained - trained_before,
    )
    code = 130 if interrupted else next((c for c in codes if c != 0), 0)
    return outcome, code
