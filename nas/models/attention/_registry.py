"""The attention registry and the constructor contract every module follows.

An attention module is a class ``Module(channels, *, knob=...)`` whose forward maps a feature
map F of shape (N, C, H, W) to A(F) of the same shape. Its keyword-only arguments are its
knobs and carry the names of :class:`nas.config.AttentionConfig` fields, so the builder passes
exactly the knobs a module takes and the search space samples exactly those.
"""

from __future__ import annotations

import inspect
from functools import cache

from torch import nn

from nas.config import AttentionConfig
from nas.registry import Registry

#: Attention modules by registry name.
ATTENTION: Registry[type[nn.Module]] = Registry("attention type")


@cache
def knobs_of(name: str) -> tuple[str, ...]:
    """The :class:`AttentionConfig` knobs that attention type ``name`` takes."""
    params = inspect.signature(ATTENTION[name].__init__).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def make_attention(cfg: AttentionConfig, channels: int) -> nn.Module:
    """Build the attention module ``cfg.type`` for ``channels`` channels with ``cfg``'s knobs."""
    cls = ATTENTION[cfg.type]
    return cls(channels, **{k: getattr(cfg, k) for k in knobs_of(cfg.type)})


def hidden_units(channels: int, reduction: int, min_hidden: int) -> int:
    """C/r hidden units with a floor: ``max(channels // reduction, min_hidden)``."""
    return max(channels // reduction, min_hidden)


@ATTENTION.register("none")
class NoAttention(nn.Identity):
    """Identity: the baseline without attention. The builder inserts nothing for it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
