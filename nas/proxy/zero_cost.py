"""Zero-cost scores: how promising an untrained network looks, from one fixed batch.

Each score takes the network (never modified: scores work on a copy), one batch of
normalised images and their labels, and returns a float where higher means "predicted
better". ``params`` and ``flops`` come from the counts, not from the network.

* ``synflow`` (Tanaka et al., 2020): with every weight replaced by its absolute value and BN
  in eval mode, in float64, R = the sum of the outputs for an input of ones; the score is
  sum over parameters of |theta * dR/dtheta|.
* ``naswot`` (Mellor et al., 2021): c_i is the binary code of which ReLUs fire for image i
  (the ReLU modules and each residual block's output); K[i, j] = N_A - hamming(c_i, c_j);
  the score is log |det K|.
* ``grad_norm`` (Abdelfattah et al., 2021): the sum over conv and linear weights of the L2
  norm of the cross-entropy gradient on the batch.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.registry import Registry

ZeroCostScore = Callable[[nn.Module, Tensor, Tensor], float]
SCORES: Registry[ZeroCostScore] = Registry("zero-cost score")

#: Images in the fixed batch the scores are computed on.
BATCH = 64


def _quiet_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with dropout off (so no score draws random numbers)."""
    net = copy.deepcopy(model)
    for m in net.modules():
        if isinstance(m, nn.Dropout | nn.Dropout2d):
            m.p = 0.0
    return net


@SCORES.register("synflow")
def synflow(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Synaptic flow of the network with absolute weights on an input of ones."""
    net = _quiet_copy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    net.zero_grad(set_to_none=True)
    net(ones).sum().backward()
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    with torch.no_grad():
        for p in net.parameters():
            if p.grad is not None:
                total += (p * p.grad).abs().sum()
    return float(total)


def _activation_modules(net: nn.Module) -> list[nn.Module]:
    """ReLU modules, and modules whose forward ends in a functional ReLU (residual blocks)."""
    from nas.models.blocks import ResidualBlock

    return [m for m in net.modules() if isinstance(m, nn.ReLU | ResidualBlock)]


@SCORES.register("naswot")
def naswot(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """log |det K| of the Hamming kernel of the batch's ReLU codes.

    K is accumulated layer by layer (agreements of each layer's codes), so memory stays at
    one layer's activations however deep or wide the network is."""
    net = _quiet_copy(model).train()
    n = len(x)
    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    seen = [0]

    def hook(module: nn.Module, inputs: object, output: Tensor) -> None:
        c = (output.detach() > 0).flatten(1).to(torch.float32)
        # exact in float32: each entry counts at most one layer's units (< 2**24)
        agree = c @ c.T + (1 - c) @ (1 - c).T
        kernel.add_(agree.to(torch.float64))
        seen[0] += 1

    handles = [m.register_forward_hook(hook) for m in _activation_modules(net)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    if not seen[0]:
        return 0.0
    _, logdet = torch.linalg.slogdet(kernel)
    value = float(logdet)
    return value if math.isfinite(value) else float("-inf")


@SCORES.register("grad_norm")
def grad_norm(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Sum of the L2 norms of the loss gradient of every conv and linear weight."""
    net = _quiet_copy(model).train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()  # type: ignore[no-untyped-call]
    total = 0.0
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear) and m.weight.grad is not None:
            total += float(m.weight.grad.norm())
    return total


def zero_cost_scores(
    model: nn.Module, x: Tensor, y: Tensor, *, params: int, flops: int | None
) -> dict[str, float]:
    """Every score of :data:`SCORES` plus ``params`` and ``flops``, and ``seconds`` (the time
    the network-based scores took). The caller's random-number streams are untouched."""
    scores: dict[str, float] = {"params": float(params)}
    if flops is not None:
        scores["flops"] = float(flops)
    started = time.perf_counter()
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for name, score in SCORES.items():
            scores[name] = score(model, x, y)
    scores["seconds"] = time.perf_counter() - started
    return scores
