"""Latency and peak memory of a candidate on the device a search targets, before training.

The network is measured as the proxy runs it there (:class:`~nas.hardware.context.
HardwareContext`): in eval mode under ``torch.inference_mode``, fp32 and contiguous on CPU,
bf16 autocast and channels_last on CUDA, at the context's batch, with its thread count
pinned.

* **Latency**: ``torch.utils.benchmark.Timer`` (which synchronises CUDA around each run):
  warm-up runs first, then the median of at least :data:`RUNS` timed runs, in milliseconds
  per forward pass of one batch. A run of a very fast network repeats the forward pass so
  that each timed run lasts about a millisecond, and is divided back.
* **Peak memory**: on CUDA, ``torch.cuda.max_memory_allocated`` over the forward pass, minus
  what was allocated before the network was moved there. On CPU there is no allocator
  statistic, so it is an **estimate**: the bytes of the weights, the buffers and the input
  plus the peak of the bytes held by the tensors the forward pass's operators return
  (:class:`AllocationTracker`; kernels' internal workspaces are not seen, except the
  attention scores that ``scaled_dot_product_attention``'s math path holds,
  :func:`attention_scores_bytes`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from nas.hardware.context import RUNS, HardwareContext

#: Warm-up runs before timing (the first runs allocate and pick kernels).
WARMUP = 3
#: A timed run repeats the forward pass until it lasts about this long (seconds).
MIN_RUN_S = 1e-3


@dataclass(frozen=True)
class HardwareMeasurement:
    """One candidate measured in one context.

    Attributes:
        latency_ms: median milliseconds per forward pass of one batch.
        memory_bytes: peak memory of the forward pass (an estimate on CPU, see the module
            doc; None: not measured).
        runs: timed runs behind the median (0: given up after the warm-up, ``latency_ms``
            is the fastest warm-up run).
        seconds: what the measurement cost (building the network included).
    """

    latency_ms: float
    memory_bytes: float | None
    runs: int
    seconds: float


def _autocast(ctx: HardwareContext) -> contextlib.AbstractContextManager[Any]:
    if ctx.precision == "bf16":
        return torch.autocast(ctx.device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _memory_format(ctx: HardwareContext) -> torch.memory_format:
    return torch.channels_last if ctx.memory_format == "channels_last" else torch.contiguous_format


def _tensor_bytes(tensors: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class AllocationTracker(TorchDispatchMode):  # type: ignore[no-untyped-call,misc]
    """Follows the storages the operators of a forward pass return: the bytes they hold now
    (:attr:`live`) and at most (:attr:`peak`). Storages that existed before (the weights,
    the input: ``known``) are not counted again when an operator returns a view of them; a
    storage is released when the last tensor seen holding it is freed."""

    def __init__(self, known: list[torch.Tensor]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.live = 0
        self.peak = 0
        self._held: dict[int, list[int]] = {}  # storage address -> [tensors seen, bytes]
        self._known = {t.untyped_storage().data_ptr() for t in known}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten.scaled_dot_product_attention.default:
            self.peak = max(self.peak, self.live + attention_scores_bytes(*args[:3]))
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._seen(t)
        return out

    def _seen(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        address = storage.data_ptr()
        if address == 0 or address in self._known:
            return
        held = self._held.get(address)
        if held is None:
            held = self._held[address] = [0, storage.nbytes()]
            self.live += held[1]
            self.peak = max(self.peak, self.live)
        held[0] += 1
        weakref.finalize(t, self._freed, address)

    def _freed(self, address: int) -> None:
        held = self._held.get(address)
        if held is None:
            return
        held[0] -= 1
        if held[0] == 0:
            del self._held[address]
            self.live -= held[1]


def attention_scores_bytes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> int:
    """What ``scaled_dot_product_attention(q, k, v)`` holds inside on the CPU and the tracker
    does not see: on its math path the scores and their softmax, batch x heads x L x S each;
    the fused kernel (chosen for contiguous inputs of one head size) holds blocks only."""
    try:  # private; checked against torch 2.14.1 (0 is the math path)
        fused = torch._fused_sdp_choice(q, k, v) != 0
    except Exception:  # another torch: count the math path, the larger
        fused = False
    if fused:
        return 0
    return 2 * q.shape[:-1].numel() * k.shape[-2] * q.element_size()


def estimate_forward_memory(model: nn.Module, x: torch.Tensor) -> int:
    """Estimated peak bytes of ``model(x)`` on CPU: weights, buffers and input, plus the peak
    of what the operators' results hold (see :class:`AllocationTracker`)."""
    state = [*model.parameters(), *model.buffers()]
    tracker = AllocationTracker([*state, x])
    with torch.inference_mode(), tracker:
        out = model(x)
        peak = tracker.peak
    del out
    return _tensor_bytes(state) + _tensor_bytes([x]) + peak


def _cuda_peak(model: nn.Module, x: torch.Tensor, ctx: HardwareContext, base: int) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode(), _autocast(ctx):
        model(x)
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated()) - base


def time_forward(
    model: nn.Module,
    x: torch.Tensor,
    ctx: HardwareContext,
    runs: int = RUNS,
    give_up_above: float | None = None,
) -> tuple[float, int]:
    """Median milliseconds of ``model(x)`` over ``runs`` timed runs after :data:`WARMUP`
    warm-up runs, and the number of timed runs; when the fastest warm-up run already took
    more than ``give_up_above`` milliseconds, that time and 0 runs (a lower bound: the
    candidate is far over a latency limit and is not timed further)."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "no CUDA runtime"
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="model(x)", globals={"model": model, "x": x}, num_threads=ctx.threads)
    with torch.inference_mode(), _autocast(ctx), _threads(ctx.threads):
        # Timer.timeit warms up twice before every call; its inner timed loop does not, so
        # the warm-up is done once here and each of the runs is one synchronised block.
        warm = min(_block(timer, 1) for _ in range(WARMUP))
        if give_up_above is not None and warm * 1e3 > give_up_above:
            return warm * 1e3, 0
        number = max(1, int(MIN_RUN_S / max(warm, 1e-9)))
        times = sorted(_block(timer, number) / number for _ in range(runs))
    mid = len(times) // 2
    median = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
    return median * 1e3, runs


def _block(timer: Any, number: int) -> float:
    """Seconds of ``number`` runs of the timer's statement, CUDA synchronised around them
    (``Timer._timeit``: checked against torch 2.14)."""
    seconds: float = timer._timeit(number)
    return seconds


@contextlib.contextmanager
def _threads(n: int) -> Any:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure(
    cfg: Any,
    ctx: HardwareContext,
    runs: int = RUNS,
    *,
    memory: bool = True,
    give_up_above: float | None = None,
) -> HardwareMeasurement:
    """Latency and (if ``memory``) peak memory of the architecture ``cfg`` in ``ctx`` (see
    the module doc); ``give_up_above``: see :func:`time_forward`."""
    from nas.models import build_model

    start = time.perf_counter()
    device = torch.device(ctx.device)
    cuda = device.type == "cuda"
    base = int(torch.cuda.memory_allocated()) if cuda else 0
    fmt = _memory_format(ctx)
    model = build_model(cfg, device=device).eval().to(memory_format=fmt)
    size = (ctx.batch, cfg.in_channels, cfg.input_size, cfg.input_size)
    x = torch.randn(size, device=device).contiguous(memory_format=fmt)
    peak: float | None = None
    if memory:
        peak = float(_cuda_peak(model, x, ctx, base) if cuda else estimate_forward_memory(model, x))
    latency, timed = time_forward(model, x, ctx, runs, give_up_above)
    return HardwareMeasurement(latency, peak, timed, time.perf_counter() - start)


def _default_context() -> HardwareContext:
    return HardwareContext.current("cuda" if torch.cuda.is_available() else "cpu")


def measure_latency(cfg: Any) -> float:
    """The ``latency`` metric's measure in this process's default context (CUDA if
    available, else CPU, at the default batch): milliseconds per batch."""
    return measure(cfg, _default_context()).latency_ms


def measure_memory(cfg: Any) -> float:
    """The ``memory`` metric's measure in this process's default context: peak megabytes
    (an estimate on CPU)."""
    value = measure(cfg, _default_context()).memory_bytes
    assert value is not None
    return value / 1e6
