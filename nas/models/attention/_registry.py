"""The attention registry and the constructor contract every module follows.

An attention module is a class ``Module(channels, *, knob=...)`` whose forward maps a feature
map F of shape (N, C, H, W) to A(F) of the same shape. Its keyword-only arguments are its
knobs and carry the names of :class:`nas.config.AttentionConfig` fields, so the builder passes
exactly the knobs a module takes and the search space samples exactly those. The names and
knobs are declared by the config layer (:data:`nas.config.ATTENTION_KNOBS`); registering a
module under an undeclared name, or with other knobs, fails at import.
"""

from __future__ import annotations

import inspect

from torch import nn

from nas.config import ATTENTION_KNOBS, AttentionConfig, attention_knobs
from nas.registry import Registry


def signature_knobs(cls: type[nn.Module]) -> tuple[str, ...]:
    """The keyword-only arguments of ``cls.__init__``: the knobs the module takes."""
    params = inspect.signature(cls.__init__).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


class AttentionRegistry(Registry[type[nn.Module]]):
    """The attention registry: only names declared in the config, with the declared knobs."""

    def add(self, name: str, obj: type[nn.Module]) -> None:
        if name not in ATTENTION_KNOBS:
            raise KeyError(f"attention type {name!r} is not declared in nas.config.ATTENTION_KNOBS")
        if set(signature_knobs(obj)) != set(ATTENTION_KNOBS[name]):
            raise KeyError(
                f"{obj.__name__} takes knobs {signature_knobs(obj)}, but nas.config declares "
                f"{ATTENTION_KNOBS[name]} for {name!r}"
            )
        super().add(name, obj)


#: Attention modules by registry name.
ATTENTION = AttentionRegistry("attention type")


def make_attention(cfg: AttentionConfig, channels: int) -> nn.Module:
    """Build the attention module ``cfg.type`` for ``channels`` channels with ``cfg``'s knobs."""
    cls = ATTENTION[cfg.type]
    return cls(channels, **{k: getattr(cfg, k) for k in attention_knobs(cfg.type)})


def hidden_units(channels: int, reduction: int, min_hidden: int) -> int:
    """C/r hidden units with a floor: ``max(channels // reduction, min_hidden)``."""
    return max(channels // reduction, min_hidden)


@ATTENTION.register("none")
class NoAttention(nn.Identity):
    """Identity: the baseline without attention. The builder inserts nothing for it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
