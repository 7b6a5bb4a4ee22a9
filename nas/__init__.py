"""nas: neural architecture search for attention-augmented ResNets under a parameter budget.

Public API::

    import nas
    cfg = nas.preset("resnet20-cbam")          # an ArchConfig (typed, frozen, JSON round trip)
    model = nas.build_model(cfg)               # or build_model(cfg.to_dict())
    counts = nas.count(cfg)                    # fvcore params and FLOPs, with a breakdown
"""

from __future__ import annotations

from nas.config import ArchConfig, AttentionConfig, StageConfig
from nas.errors import NasError
from nas.models import ATTENTION, build_model

__version__ = "0.1.0"

__all__ = [
    "ATTENTION",
    "ArchConfig",
    "AttentionConfig",
    "NasError",
    "StageConfig",
    "__version__",
    "build_model",
]
