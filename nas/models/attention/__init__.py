"""Attention modules, one registry: ``ATTENTION[name](channels, **knobs)``.

A new module is declared with its knobs in :data:`nas.config.ATTENTION_KNOBS` and registered
here; that is all it takes for the builder, the search space and the parametrized tests to
pick it up.
"""

from __future__ import annotations

from nas.models.attention import gates, hierarchical, residual, self_attention
from nas.models.attention._registry import (
    ATTENTION,
    NoAttention,
    hidden_units,
    make_attention,
    signature_knobs,
)

__all__ = [
    "ATTENTION",
    "NoAttention",
    "gates",
    "hidden_units",
    "hierarchical",
    "make_attention",
    "residual",
    "self_attention",
    "signature_knobs",
]
