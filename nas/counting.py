"""Parameter and FLOP counts with fvcore, before any weights exist.

* Parameters: ``fvcore.nn.parameter_count`` on modules built on the meta device (no memory,
  no initialisation).
* FLOPs: ``fvcore.nn.FlopCountAnalysis`` at the config's input size (batch of one).
  fvcore counts **one multiply-add as one flop** and silently counts zero for many ops that
  attention is made of; :data:`EXTRA_HANDLES` registers handles for them: one flop per
  element for elementwise ops (``mul``, ``add``, ``sigmoid``, ``sqrt``, ...) and reductions
  (``mean``, ``amax``, ``sum``, ``softmax``, ``std``), one per window element for max and
  average pooling, and for scaled-dot-product attention its two matrix products
  (L*S*(E+Ev) multiply-adds per batch and head) plus L*S for the softmax.

Counting goes unit by unit through :func:`nas.models.plan.plan` (stem, each block, each
attention module, extra conv, head). fvcore counts per op, so the units' counts add up to
the whole network's exactly (``tests/test_counting.py`` checks against whole-model traces).
Each unit's counts are memoised by its spec and input shape: a search revisits the same
units over and over, and a candidate whose units are all known is counted without building
anything.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, reduce
from operator import mul
from typing import Any

import torch

with warnings.catch_warnings():  # fvcore scripts a helper at import; torch deprecates that
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis, parameter_count
    from fvcore.nn.jit_handles import get_shape
from torch import nn

from nas.config import ArchConfig
from nas.errors import ConfigError
from nas.models.network import build_model, on_meta
from nas.models.plan import AttentionSpec, BlockSpec, HeadSpec, Shape, Unit, UnitSpec, plan
from nas.units import human

Handle = Callable[[list[Any], list[Any]], int]


def _numel(shape: Sequence[int] | None) -> int:
    return int(reduce(mul, shape, 1)) if shape else 0


def _elementwise(inputs: list[Any], outputs: list[Any]) -> int:
    """One flop per output element (mul, add, sigmoid, sqrt, ...)."""
    return _numel(get_shape(outputs[0]))


def _reduction(inputs: list[Any], outputs: list[Any]) -> int:
    """One flop per element read (mean, amax, sum, softmax, ...)."""
    return _numel(get_shape(inputs[0]))


def _pool(inputs: list[Any], outputs: list[Any]) -> int:
    """One flop per element of each pooling window."""
    kernel = inputs[1].toIValue()
    if kernel is None and inputs[1].node().kind() == "prim::ListConstruct":
        kernel = [v.toIValue() for v in inputs[1].node().inputs()]
    window = reduce(mul, kernel, 1) if isinstance(kernel, list | tuple) else int(kernel) ** 2
    return _numel(get_shape(outputs[0])) * window


def _sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    """softmax(Q K^T) V: L*S*E + L*S*Ev multiply-adds and L*S softmax flops per batch-head."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch_heads = _numel(q[:-2])
    return int(batch_heads * q[-2] * k[-2] * (q[-1] + v[-1] + 1))


#: Handles for the ops fvcore leaves uncounted but attention is made of.
EXTRA_HANDLES: dict[str, Handle] = {
    **{
        f"aten::{op}": _elementwise
        for op in (
            "add",
            "add_",
            "mul",
            "mul_",
            "sub",
            "rsub",
            "div",
            "sigmoid",
            "sigmoid_",
            "sqrt",
            "exp",
            "pow",
        )
    },
    **{f"aten::{op}": _reduction for op in ("mean", "amax", "sum", "softmax", "std", "var")},
    "aten::max_pool2d": _pool,
    "aten::avg_pool2d": _pool,
    "aten::scaled_dot_product_attention": _sdpa,
}


@dataclass
class PartCount:
    """One row of the breakdown: the stem, a stage, the extra conv or the head."""

    name: str
    params: int = 0
    flops: int = 0
    attention_params: int = 0
    attention_flops: int = 0
    attention_modules: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AttentionCount:
    """One attention module: its module path, type, channels and own cost."""

    name: str
    type: str
    channels: int
    params: int
    flops: int


@dataclass
class Counts:
    """Total parameters and FLOPs of an architecture, with a breakdown."""

    params: int
    flops: int | None
    parts: list[PartCount] = field(default_factory=list)
    attention: list[AttentionCount] = field(default_factory=list)

    @property
    def attention_params(self) -> int:
        return sum(a.params for a in self.attention)

    @property
    def attention_flops(self) -> int:
        return sum(a.flops for a in self.attention)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: integer ``params`` and ``flops`` plus the breakdown."""
        return {
            "params": self.params,
            "flops": self.flops,
            "attention_params": self.attention_params,
            "attention_flops": self.attention_flops if self.flops is not None else None,
            "breakdown": [p.to_dict() for p in self.parts],
            "attention_modules": [dict(a.__dict__) for a in self.attention],
        }


def flop_analysis(module: nn.Module, inputs: torch.Tensor) -> FlopCountAnalysis:
    """A quiet ``FlopCountAnalysis`` with :data:`EXTRA_HANDLES` registered."""
    analysis = FlopCountAnalysis(module, inputs).set_op_handle(**EXTRA_HANDLES)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    return analysis


@lru_cache(maxsize=65_536)
def spec_params(spec: UnitSpec) -> int:
    """fvcore's parameter count of one unit, built on the meta device (memoised)."""
    with on_meta():
        module = spec.build()
    return int(parameter_count(module)[""])


@lru_cache(maxsize=65_536)
def spec_flops(spec: UnitSpec, shape: Shape) -> int:
    """fvcore's FLOPs of one unit on a (1, *shape) input (memoised).

    The unit is built on the meta device and given uninitialised memory: the trace needs
    real tensors, but not their values.
    """
    with on_meta():
        module = spec.build()
    module = module.to_empty(device="cpu").eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return int(flop_analysis(module, torch.zeros(1, *shape)).total())
    except RuntimeError as exc:  # torch.OutOfMemoryError is one too
        from nas.training.trainer import is_out_of_memory

        if not is_out_of_memory(exc):
            raise
        asked = re.search(r"allocate (\d+) bytes", str(exc))
        need = f" ({human(int(asked.group(1)))}B at once)" if asked else ""
        what = (
            f"{spec.attention.type} attention"
            if isinstance(spec, AttentionSpec)
            else type(module).__name__
        )
        raise ConfigError(
            f"counting the FLOPs of the {what} on a "
            f"{'x'.join(map(str, shape))} input needs more memory than this machine has"
            f"{need}; use a smaller input size"
        ) from None


def _pieces(unit: Unit) -> list[tuple[str, UnitSpec, Shape, bool]]:
    """A unit split into separately counted pieces: (module path, spec, input, is attention).

    A block holding attention is counted as the bare block plus the attention module at the
    block's output; fvcore counts per op, so the two add up to the block exactly.
    """
    spec = unit.spec
    if isinstance(spec, HeadSpec):  # dropout has neither parameters nor FLOPs
        spec = dataclasses.replace(spec, dropout=0.0)
    if isinstance(spec, BlockSpec) and spec.attention is not None:
        return [
            (unit.name, spec.bare(), unit.in_shape, False),
            (f"{unit.name}.attn", spec.attention, spec.out_shape(unit.in_shape), True),
        ]
    return [(unit.name, spec, unit.in_shape, isinstance(spec, AttentionSpec))]


def count(cfg: ArchConfig | Mapping[str, Any], *, flops: bool = True) -> Counts:
    """Parameters and (optionally) FLOPs of ``cfg``, with a per-part and per-attention breakdown.

    Args:
        cfg: the architecture, or its ``to_dict()`` form (the ``arch`` of an export), as
            :func:`nas.build_model` takes it.
        flops: also count FLOPs (an fvcore trace per unit not seen before, tens of
            milliseconds each); parameters alone take about a millisecond.
    """
    cfg = cfg if isinstance(cfg, ArchConfig) else ArchConfig.from_dict(cfg)
    parts: dict[str, PartCount] = {}
    attention: list[AttentionCount] = []
    total_params, total_flops = 0, 0
    for unit in plan(cfg):
        part = parts.setdefault(unit.part, PartCount(unit.part))
        for name, spec, shape, is_attention in _pieces(unit):
            p = spec_params(spec)
            f = spec_flops(spec, shape) if flops else 0
            part.params += p
            part.flops += f
            total_params += p
            total_flops += f
            if is_attention:
                part.attention_params += p
                part.attention_flops += f
                part.attention_modules += 1
                attention.append(AttentionCount(name, cfg.attention.type, shape[0], p, f))
    return Counts(
        params=total_params,
        flops=total_flops if flops else None,
        parts=list(parts.values()),
        attention=attention,
    )


def whole_model_params(cfg: ArchConfig) -> int:
    """fvcore's parameter count of the whole network on the meta device, without memoisation."""
    return int(parameter_count(build_model(cfg, device="meta"))[""])


def whole_model_flops(cfg: ArchConfig) -> int:
    """FLOPs of ``cfg`` traced as one graph, without memoisation (to check :func:`count`)."""
    model = build_model(cfg).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        x = torch.zeros(1, cfg.in_channels, cfg.input_size, cfg.input_size)
        return int(flop_analysis(model, x).total())


def clear_cache() -> None:
    """Forget every memoised unit count."""
    spec_params.cache_clear()
    spec_flops.cache_clear()


def count_params(cfg: ArchConfig) -> int:
    """Parameters of ``cfg`` (about a millisecond): the ``params`` metric's measure."""
    return count(cfg, flops=False).params


def count_flops(cfg: ArchConfig) -> int:
    """FLOPs per image of ``cfg`` (an fvcore trace of each unit not seen before): the
    ``flops`` metric's measure."""
    flops = count(cfg).flops
    assert flops is not None
    return flops
