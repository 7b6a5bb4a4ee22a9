"""Attention modules, one registry: ``ATTENTION[name](channels, **knobs)``.

Registering a module here is all it takes for the builder, the search space and the
parametrized tests to pick it up.
"""

from __future__ import annotations

from nas.models.attention import gates, hierarchical, residual, self_attention
from nas.models.attention._registry import (
    ATTENTION,
    NoAttention,
    hidden_units,
    knobs_of,
    make_attention,
)

__all__ = [
    "ATTENTION",
    "NoAttention",
    "gates",
    "hidden_units",
    "hierarchical",
    "knobs_of",
    "make_attention",
    "residual",
    "self_attention",
]
