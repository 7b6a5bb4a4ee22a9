"""Search spaces: TOML files whose points are architecture configs.

``load_space(path).suggest(trial)`` maps an Optuna trial to an
:class:`~nas.config.ArchConfig`; ``params_for(config)`` maps back (to enqueue presets).
"""

from __future__ import annotations

from nas.space.dims import Choice, Dim, Fixed, FloatRange, IntRange
from nas.space.space import (
    BUILTIN_SPACES,
    DEFAULT_SPACE,
    SearchSpace,
    load_space,
    parse_space,
    resolve_space_path,
)

__all__ = [
    "BUILTIN_SPACES",
    "DEFAULT_SPACE",
    "Choice",
    "Dim",
    "Fixed",
    "FloatRange",
    "IntRange",
    "SearchSpace",
    "load_space",
    "parse_space",
    "resolve_space_path",
]
