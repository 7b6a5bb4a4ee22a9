"""nas: neural architecture search for attention-augmented ResNets under a parameter budget.

Public API::

    import nas
    cfg = nas.preset("resnet20-cbam")          # an ArchConfig (typed, frozen, JSON round trip)
    model = nas.build_model(cfg)               # or build_model(cfg.to_dict())
    counts = nas.count(cfg)                    # fvcore params and FLOPs, with a breakdown
    cfg = nas.ArchConfig.from_file("best.json")  # a config or a `nas export` file
"""

from __future__ import annotations

from nas.config import ArchConfig, AttentionConfig, StageConfig
from nas.counting import Counts, count
from nas.errors import NasError
from nas.models import ATTENTION, build_model
from nas.presets import preset

__version__ = "0.1.0"

__all__ = [
    "ATTENTION",
    "ArchConfig",
    "AttentionConfig",
    "Counts",
    "NasError",
    "StageConfig",
    "__version__",
    "build_model",
    "count",
    "preset",
]
