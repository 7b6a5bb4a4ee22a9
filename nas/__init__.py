"""nas: neural architecture search for attention-augmented ResNets under a parameter budget.

Public API::

    import nas
    cfg = nas.preset("resnet20-cbam")          # an ArchConfig (typed, frozen, JSON round trip)
    model = nas.build_model(cfg)               # or build_model(cfg.to_dict())
    counts = nas.count(cfg)                    # fvcore params and FLOPs, with a breakdown
    cfg = nas.ArchConfig.from_file("best.json")  # a config or a `nas export` file

    study = nas.Search("studies/smoke.toml").run()  # what `nas search` runs; an optuna.Study
    best = nas.best(study)                     # the trial `nas export --best` picks
    arch = nas.suggest(trial, "search_spaces/small_cifar.toml", param_limit="150k")
    #   inside your own Optuna objective: sampled, counted, rejected over the limit
    sampler = nas.make_sampler("nsga2", seed=0, trials=40, objectives=2)
    #   nas search's samplers for your own study: they learn from the rejections

The names are imported on first use, so ``import nas`` (and ``nas --help``) costs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_exports

if TYPE_CHECKING:
    from nas.config import ArchConfig, AttentionConfig, StageConfig
    from nas.counting import Counts, count
    from nas.errors import NasError
    from nas.models import ATTENTION, build_model
    from nas.presets import preset
    from nas.search.api import Search
    from nas.search.objective import suggest
    from nas.study.samplers import make_sampler
    from nas.study.stats import best

__version__ = "0.1.0"

__all__ = [
    "ATTENTION",
    "ArchConfig",
    "AttentionConfig",
    "Counts",
    "NasError",
    "Search",
    "StageConfig",
    "__version__",
    "best",
    "build_model",
    "count",
    "make_sampler",
    "preset",
    "suggest",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "ATTENTION": "nas.models",
        "ArchConfig": "nas.config",
        "AttentionConfig": "nas.config",
        "Counts": "nas.counting",
        "NasError": "nas.errors",
        "StageConfig": "nas.config",
        "best": "nas.study.stats",
        "build_model": "nas.models",
        "count": "nas.counting",
        "make_sampler": "nas.study.samplers",
        "preset": "nas.presets",
        "Search": "nas.search.api",
        "suggest": "nas.search.objective",
    },
)
