"""A study whose trials are known: architectures for the tiny image folder, chosen values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution

from nas.config import AttentionConfig
from nas.counting import count
from tests.conftest import small_config

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
