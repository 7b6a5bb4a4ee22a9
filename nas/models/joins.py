"""How an attention module's output A(F) joins the features F (seed 003).

Each join wraps one attention module and is itself shape-preserving, so the network places
a join wherever attention goes and never needs to know which module it holds.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nas.config import AttentionConfig
from nas.models.attention import make_attention
from nas.registry import Registry

#: Join wrappers by name: ``JOINS[name](attention_module)``.
JOINS: Registry[type[nn.Module]] = Registry("join")


class _Join(nn.Module):
    """Base of the joins: holds the attention module as ``self.attn``."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.attn = attn


@JOINS.register("multiply")
class MultiplyJoin(_Join):
    """F' = A(F): the module's output replaces F (the usual gate, F * M(F))."""

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.attn(x)
        return out


@JOINS.register("residual")
class ResidualJoin(_Join):
    """F' = F + A(F)."""

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.attn(x)
        return out


@JOINS.register("weighted")
class WeightedJoin(_Join):
    """F' = F + g * A(F) with a learned scalar g that starts at 0, so training starts from F."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__(attn)
        self.gain = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = x + self.gain * self.attn(x)
        return out


def make_joined_attention(cfg: AttentionConfig, channels: int) -> nn.Module | None:
    """The attention of ``cfg`` for ``channels`` channels wrapped in its join; None for ``none``."""
    if cfg.type == "none":
        return None
    return JOINS[cfg.join](make_attention(cfg, channels))
