"""Shared fixtures: small configs, the repository root, a subprocess runner for the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution

from nas.config import ArchConfig, AttentionConfig, StageConfig
from nas.counting import count
from tests.pgserver import PostgresServer, find_pg_bin

ROOT = Path(__file__).resolve().parents[1]

# A shell starts a background job (``pytest &``, ``nohup``) with SIGINT ignored, and every
# process it starts inherits that: the tests that press Ctrl-C on a `nas` process would see
# it ignored. Give SIGINT its default handler here, so children start with Python's own.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: What every rank-agreement object of nas fidelity carries (the issue's acceptance list).
AGREEMENT_KEYS = {
    "kendall_tau",
    "spearman",
    "tau_low",
    "tau_high",
    "n",
    "same_size_tau",
    "same_size_pairs",
    "same_size_low",
    "same_size_high",
}
DEFAULT_SPACE = ROOT / "search_spaces" / "attention_resnet.toml"

warnings.filterwarnings("ignore", category=FutureWarning)
torch.set_num_threads(min(2, torch.get_num_threads()))


def small_config(attention: AttentionConfig | None = None, **changes: object) -> ArchConfig:
    """A tiny 3-stage network (8/16/16 channels) that builds and runs in milliseconds."""
    base = ArchConfig(
        stem_width=8,
        stages=(StageConfig(8, 1, 1), StageConfig(16, 1, 2), StageConfig(16, 1, 2)),
        attention=attention or AttentionConfig(),
    )
    return base.replace(**changes) if changes else base


def run_nas(
    *args: str,
    cwd: Path = ROOT,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real ``nas`` command in a subprocess (as ``python -m nas``), from ``cwd``."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")])
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "nas", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


@pytest.fixture
def nas_cli():  # type: ignore[no-untyped-def]
    return run_nas


TINY_SPACE = """
[space]
name = "tiny"
description = "8-16 channel networks for tests"

[backbone]
stem_width = [4, 8]
block = "basic"
shortcut = "conv"
extra_conv = 0
dropout = 0.0

[stages]
count = 2
growth = [1, 2]
blocks = 1
stride = [1, 2]

[stages.1]
stride = 1

[attention]
type = ["none", "se", "cbam", "spatial"]
placement = ["in_block", "after_stage"]
join = ["multiply", "weighted"]
reduction = 4
kernel_size = 3
"""


def make_image_folder(
    root: Path, classes: int = 3, per_class: int = 40, test_per_class: int = 10, size: int = 16
) -> Path:
    """A learnable image folder: each class is a colour with a bright square at its corner."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", test_per_class)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
                img[..., c % 3] += 100
                q = size // 2
                y0, x0 = (c // 2) % 2 * q, c % 2 * q
                img[y0 : y0 + q, x0 : x0 + q] = 250
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images"))


def tiny_search(
    space: Path,
    data: Path,
    db: Path,
    study: str,
    *,
    log: Callable[[str], None] | None = None,
    hooks: Any = None,
    **changes: Any,
) -> optuna.Study:
    """Run a quiet in-process search on the image folder ``data``: random sampler, no early
    stopping, batches of 16, CPU; ``changes`` set or override the rest (trials, proxy epochs,
    early stopping, ...); ``log`` receives the lines a worker prints, ``hooks`` replace the
    proxy evaluator or the candidates (see :class:`nas.search.loop.Hooks`)."""
    from nas.search.api import Search
    from nas.search.events import SilentMonitor
    from nas.search.loop import Hooks
    from nas.search.settings import SearchSettings
    from nas.study.address import StudyAddress

    values: dict[str, Any] = {
        "space": str(space),
        "dataset": "imagefolder",
        "data_dir": str(data),
        "param_limit": 1_000_000,
        "sampler": "random",
        "proxy_batch_size": 16,
        "storage": f"sqlite:///{db}",
        "study": study,
        "device": "cpu",
        "early_stopping": "off",
        "quiet": True,
    }
    settings = SearchSettings.of(**{**values, **changes})
    Search(settings=settings).outcome(SilentMonitor(), log or (lambda text: None), hooks or Hooks())
    address = StudyAddress.of(settings.storage, settings.study_name)
    return optuna.load_study(study_name=study, storage=address.url)


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoded-tensor caches of the tests go to a temporary folder."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session, stopped and deleted afterwards."""
    if find_pg_bin() is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
            "/usr/lib/postgresql/*/bin; install them with .ci/install-postgres"
        )
    with PostgresServer() as server:
        yield server


# ----------------------------------------------------------------- studies with known trials
KINDS = [
    "none",
    "se",
    "channel",
    "spatial",
    "cbam",
    "self_attn",
    "mhsa",
    "residual_attn",
    "hierarchical",
]


def arch_for(kind: str) -> dict[str, Any]:
    """A tiny architecture for 3x16x16 images with 3 classes and attention ``kind``."""
    return small_config(
        AttentionConfig(type=kind, placement="after_stage", heads=2, reduction=4),
        input_size=16,
        num_classes=3,
    ).to_dict()


def make_study(
    db: Path,
    data_dir: Path,
    accuracies: dict[str, float],
    extra: dict[str, dict[str, Any]] | None = None,
) -> optuna.Study:
    """A study with one COMPLETE trial per entry of ``accuracies`` (attention kind -> proxy
    accuracy), plus one rejected trial, searched on ``data_dir``."""
    from nas.config import ArchConfig

    study = optuna.create_study(
        study_name="w", storage=f"sqlite:///{db}", directions=["maximize", "minimize"]
    )
    study.set_metric_names(["val_accuracy", "params"])
    study.set_user_attr("nas_settings", {"dataset": "imagefolder", "data_dir": str(data_dir)})
    for kind, acc in accuracies.items():
        arch = arch_for(kind)
        c = count(ArchConfig.from_dict(arch))
        attrs = {
            "arch": arch,
            "params": c.params,
            "flops": c.flops,
            "accuracy": acc,
            "curve": [acc],
            **(extra or {}).get(kind, {}),
        }
        study.add_trial(
            optuna.trial.create_trial(
                values=[acc, float(c.params)],
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs=attrs,
            )
        )
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED,
            params={"x": 0.1},
            distributions={"x": FloatDistribution(0, 1)},
            user_attrs={"rejected": "9.00M params > limit 5.00M", "params": 9_000_000},
        )
    )
    return study


@pytest.fixture
def front_study(tmp_path: Path, image_folder: Path) -> tuple[Path, optuna.Study]:
    """Three trials on the Pareto front (none < se < cbam in params and accuracy) and one
    dominated trial (mhsa: more params than cbam, lower accuracy)."""
    db = tmp_path / "w.db"
    study = make_study(db, image_folder, {"none": 0.60, "se": 0.70, "cbam": 0.80, "mhsa": 0.50})
    return db, study


def settings_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """``--show-settings``' table as flag -> (value, origin)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) >= 3 and cells[0].startswith("--"):
            rows[cells[0]] = (cells[1], cells[2])
    return rows
