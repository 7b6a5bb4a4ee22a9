"""Self-attention over the H*W positions of a feature map (seed 003)."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from nas.models.attention._registry import ATTENTION, hidden_units


def _positions(x: Tensor, heads: int) -> Tensor:
    """(N, heads*d, H, W) -> (N, heads, H*W, d), contiguous: on the CPU a transposed view
    sends ``scaled_dot_product_attention`` down its math path, which holds the
    N x heads x HW x HW scores (31 GiB for 1000 images of 8 heads over 32x32 positions) and
    ran 3x slower than the fused kernel that contiguous inputs get (fused only where Q, K
    and V have one head size: mhsa, not self_attn's narrower Q and K)."""
    n, c, h, w = x.shape
    return x.reshape(n, heads, c // heads, h * w).transpose(2, 3).contiguous()


@ATTENTION.register("self_attn")
class SelfAttention(nn.Module):
    """SAGAN-style self-attention: softmax(Q K^T) V over the H*W positions.

    1x1 convs give Q and K with C/r channels and V with C channels. Seed 003 leaves out the
    1/sqrt(d) scale (``scale=False``); SAGAN's learned gamma is the ``weighted`` join.

    Args:
        channels: C, channels of F.
        reduction: r; Q and K have C/r channels.
        min_hidden: floor on Q/K channels.
        scale: divide the scores by sqrt(C/r).
    """

    def __init__(
        self, channels: int, *, reduction: int = 8, min_hidden: int = 1, scale: bool = True
    ) -> None:
        super().__init__()
        self.qk_channels = hidden_units(channels, reduction, min_hidden)
        self.q = nn.Conv2d(channels, self.qk_channels, 1)
        self.k = nn.Conv2d(channels, self.qk_channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.scale = scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (_positions(proj(x), 1) for proj in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(
            q, k, v, scale=None if self.scale else 1.0
        )  # (N, 1, HW, C)
        return out.transpose(2, 3).reshape(x.shape)


@ATTENTION.register("mhsa")
class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over positions with scaled dot products (Vaswani et al.).

    Q, K and V come from one 1x1 conv; each of the h heads has d = C // h channels; a 1x1
    conv W_O maps the concatenated heads back to C channels. When h does not divide C the
    heads span h*d < C channels, which W_O maps back to C.

    Args:
        channels: C, channels of F (at least ``heads``).
        heads: h (8 in seed 003).
    """

    def __init__(self, channels: int, *, heads: int = 8) -> None:
        super().__init__()
        if channels < heads:
            raise ValueError(f"{channels} channels cannot hold {heads} attention heads")
        self.heads = heads
        self.head_dim = channels // heads
        inner = heads * self.head_dim
        self.qkv = nn.Conv2d(channels, 3 * inner, 1)
        self.proj = nn.Conv2d(inner, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        q, k, v = (_positions(t, self.heads) for t in self.qkv(x).chunk(3, dim=1))
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(self.head_dim))
        out = out.transpose(2, 3).reshape(n, self.heads * self.head_dim, h, w)
        projected: Tensor = self.proj(out)
        return projected
