"""Zero-cost scores: how promising an untrained network looks, from one fixed batch.

Each score takes the network (never modified: scores work on a copy), one batch of
normalised images and their labels, and returns a float where higher means "predicted
better". ``params`` and ``flops`` come from the counts, not from the network.

**The network as a standard initialisation leaves it.** Our builder starts each residual
block's last batch-norm weight at zero (Goyal et al.'s zero-init) and the ``weighted`` join's
gain g at zero, so an untrained block body adds nothing to its output: every path through
it has weight 0, and so has every gradient into it. The reference implementations score
networks as a standard initialisation leaves them, so every score works on
:func:`standard_init_copy`: dropout off, every batch norm whose weight is exactly all zero
given weight 1, every weighted join whose gain is exactly zero given gain 1. Scores stored by
code before this (:data:`ZERO_COST_VERSION` 1) saw the zero-started network and are not
comparable with the current ones.

The scores (each computed for every candidate, so each is kept well under a second for a
100k-parameter CIFAR network on the 64-image batch on CPU):

* ``synflow`` (Tanaka, Kunin, Yamins and Ganguli, "Pruning neural networks without any data
  by iteratively conserving synaptic flow", NeurIPS 2020), as the zero-cost reference
  implementation computes it (Abdelfattah et al., below; ``foresight/pruners/measures/
  synflow.py``, registered with ``bn=False``): batch norm replaced by the identity, every
  parameter replaced by its absolute value, float64, R = the sum of the outputs for one input
  of ones; the score is the sum over the weights of the Conv2d and Linear layers of
  |theta * dR/dtheta| (biases, batch-norm parameters and join gains do not count).
* ``naswot`` (Mellor, Turner, Storkey and Crowley, "Neural architecture search without
  training", ICML 2021): c_i is the binary code of which ReLUs fire for image i (the ReLU
  modules and each residual block's output); K[i, j] = N_A - hamming(c_i, c_j); the score is
  log |det K|. Batch norm in training mode.
* ``grad_norm`` (Abdelfattah, Mehrotra, Dudziak and Lane, "Zero-cost proxies for lightweight
  NAS", ICLR 2021): the sum over Conv2d and Linear weights of the L2 norm of the
  cross-entropy gradient on the batch, batch norm kept in training mode (the reference's
  ``bn=True``).
* ``zico`` (Li, Yang, Bhardwaj and Marculescu, "ZiCo: Zero-shot NAS via inverse coefficient of
  variation on gradients", ICLR 2023): the batch split in two mini-batches, one gradient
  each; per Conv2d/Linear layer, the sum over the weights whose gradient varies of
  mean|g| / std(g) across the mini-batches; the score is the sum of the layers' logs.
* ``meco`` (Jiang, Wang and Bie, "MeCo: Zero-shot NAS with one data and single forward pass
  via minimum eigenvalue of correlation", NeurIPS 2023): one forward pass of the first image;
  per feature map, the Pearson correlation matrix of its channels over its positions; the
  score is the sum of the minimum eigenvalues.

**Activations and gates.** ``naswot`` assumes a ReLU network: it codes ReLU outputs only, so
the sigmoid gates of SE, CBAM and the spatial and hierarchical modules and the softmax of
self-attention get no binary code (they shape the codes of the ReLUs after them).
``synflow``'s "linearised" network is also a ReLU argument: with absolute weights and an
input of ones every ReLU passes its input and every gate sees large positive inputs, so
sigmoid gates saturate at 1 (the gated path counts as the ungated one) and softmax attention
tends to one-hot weights. The gates' own weights then get a zero gradient, in float64
exactly zero: the convs of SE, CBAM, spatial and hierarchical gates, of residual attention's
mask branch and, in deeper stages, self-attention's queries and keys add nothing to synflow
(multi-head attention's do). Without batch norm synflow grows geometrically with depth
(about 1e25 for ``resnet20``, 1e119 for ``attention92``); past float64's 1.8e308 it would be
infinite. ``grad_norm`` and ``zico`` take gradients through gates exactly as training does
(sigmoid derivative, softmax Jacobian). ``meco`` sees a gate only through the conv feature
maps it scales on their way to the next conv; a gate's own convs count only where their
output has two channels or more and two positions or more (not the 1x1 descriptors of SE and
CBAM MLPs, not the one-channel spatial maps).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.models.blocks import ResidualBlock
from nas.models.joins import WeightedJoin
from nas.registry import Registry

ZeroCostScore = Callable[[nn.Module, Tensor, Tensor], float]
SCORES: Registry[ZeroCostScore] = Registry("zero-cost score")

#: Images in the fixed batch the scores are computed on.
BATCH = 64

#: Version of the scores' definitions, stored with the scores: 1 scored the network with its
#: zero-started batch norms and gains and kept batch norm in synflow; 2 scores the
#: standard-init copy, synflow without batch norm, and adds zico and meco.
ZERO_COST_VERSION = 2

_BatchNorm = nn.modules.batchnorm._BatchNorm
_Dropout = nn.modules.dropout._DropoutNd


def standard_init_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` as a standard initialisation leaves it, and with dropout off.

    Every dropout gets p = 0 (so no score draws random numbers), every batch norm whose
    weight is exactly all zero gets weight 1, and every :class:`WeightedJoin` whose gain is
    exactly zero gets gain 1. Anything else (trained or not) is copied as it is.
    """
    net = copy.deepcopy(model)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _Dropout):
                m.p = 0.0
            elif isinstance(m, _BatchNorm) and m.weight is not None and not m.weight.any():
                m.weight.fill_(1.0)
            elif isinstance(m, WeightedJoin) and not m.gain.any():
                m.gain.fill_(1.0)
    return net


def _without_batch_norm(net: nn.Module) -> nn.Module:
    """``net`` with every batch norm replaced by the identity, in place.

    In-place modules (``ReLU(inplace=True)``) are made out-of-place: with the batch norm in
    front of them gone, they would overwrite a tensor that a skip connection still adds
    (pre-activation units: x + conv(relu(bn(x))))."""
    for parent in list(net.modules()):
        if getattr(parent, "inplace", False):
            setattr(parent, "inplace", False)  # noqa: B010
        for name, child in list(parent.named_children()):
            if isinstance(child, _BatchNorm):
                setattr(parent, name, nn.Identity())
    return net


def _weighted_layers(net: nn.Module) -> list[tuple[str, nn.Conv2d | nn.Linear]]:
    """The Conv2d and Linear layers, with their module paths: what the references score."""
    return [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def synflow_per_layer(model: nn.Module, x: Tensor) -> dict[str, float]:
    """Each Conv2d and Linear layer's share of :func:`synflow`, by module path.

    As the reference (``bn=False``): the standard-init copy without batch norm, every
    parameter replaced by its absolute value, in float64; R = the sum of the outputs for one
    input of ones shaped like an image of ``x``; a layer's share is sum |W * dR/dW| over its
    weight W. Biases, batch-norm parameters and join gains do not count (the reference's
    ``get_layer_metric_array`` visits only the weights of Conv2d and Linear layers).
    """
    net = _without_batch_norm(standard_init_copy(model)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    net.zero_grad(set_to_none=True)
    net(ones).sum().backward()
    shares: dict[str, float] = {}
    with torch.no_grad():
        for name, layer in _weighted_layers(net):
            grad = layer.weight.grad
            shares[name] = 0.0 if grad is None else float((layer.weight * grad).abs().sum())
    return shares


@SCORES.register("synflow")
def synflow(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Synaptic flow (Tanaka et al., NeurIPS 2020) without batch norm, as the reference:
    the sum of :func:`synflow_per_layer`."""
    return math.fsum(synflow_per_layer(model, x).values())


def _activation_modules(net: nn.Module) -> list[nn.Module]:
    """ReLU modules, and modules whose forward ends in a functional ReLU (residual blocks)."""
    return [m for m in net.modules() if isinstance(m, nn.ReLU | ResidualBlock)]


@SCORES.register("naswot")
def naswot(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """log |det K| of the Hamming kernel of the batch's ReLU codes (Mellor et al., ICML 2021).

    K is accumulated layer by layer (agreements of each layer's codes), so memory stays at
    one layer's activations however deep or wide the network is."""
    net = standard_init_copy(model).train()
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


def _weight_gradients(net: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """The cross-entropy gradient of every Conv2d and Linear weight on ``(x, y)``, by module
    path (layers the loss does not reach are left out)."""
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()  # type: ignore[no-untyped-call]
    return {
        name: layer.weight.grad.detach().flatten()
        for name, layer in _weighted_layers(net)
        if layer.weight.grad is not None
    }


@SCORES.register("grad_norm")
def grad_norm(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Sum of the L2 norms of the loss gradient of every conv and linear weight
    (Abdelfattah et al., ICLR 2021), batch norm in training mode."""
    grads = _weight_gradients(standard_init_copy(model).train(), x, y)
    return math.fsum(float(g.norm()) for g in grads.values())


@SCORES.register("zico")
def zico(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """ZiCo (Li et al., ICLR 2023): the inverse coefficient of variation of the gradients.

    The batch is split into two mini-batches (the reference draws two batches); each gives
    the cross-entropy gradient g of every Conv2d/Linear weight, batch norm in training mode.
    Per layer, S = sum over the weights whose g varies (std > 0) of mean|g| / std(g), with
    the population std (numpy's ``np.std``, ddof=0) over the two mini-batches; ZiCo is the
    sum over layers of log S, layers with S = 0 left out, as the reference ``caculate_zico``.

    Raises:
        ValueError: for a batch of fewer than 2 images.
    """
    if len(x) < 2:
        raise ValueError(f"zico needs a batch of at least 2 images, got {len(x)}")
    net = standard_init_copy(model).train()
    parts = [
        _weight_gradients(net, xb, yb)
        for xb, yb in zip(torch.tensor_split(x, 2), torch.tensor_split(y, 2), strict=True)
    ]
    logs: list[float] = []
    for name in (name for name in parts[0] if name in parts[1]):  # module order: reproducible
        g = torch.stack([part[name] for part in parts]).double()
        std = g.std(dim=0, correction=0)
        varies = std != 0
        s = float((g.abs().mean(dim=0)[varies] / std[varies]).sum())
        if s > 0:
            logs.append(math.log(s))
    return math.fsum(logs)


def _single_value_norms_use_running_stats(module: nn.Module, inputs: tuple[Tensor]) -> None:
    """Pre-hook for a batch norm fed one image: where each channel holds a single value (a 1x1
    map) batch statistics are undefined, so that call uses the running statistics."""
    module.train(inputs[0][0, 0].numel() > 1)


@SCORES.register("meco")
def meco(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """MeCo (Jiang et al., NeurIPS 2023): minimum eigenvalues of feature-map correlations.

    One forward pass of the first image of ``x``, in training mode (the reference scores one
    image with the network as built); for each counted feature map F (C channels x H*W
    positions), the C x C Pearson correlation matrix of its channels, NaN and infinite
    entries (a constant channel) set to 0 as the reference does, and its minimum eigenvalue.
    MeCo is the sum over the counted maps. Counted: the output of every Conv2d with at least
    2 channels and at least 2 positions (the reference hooks every module; a batch norm's
    output correlates as its conv's, and a map of one channel, or of one position like the
    1x1 descriptors inside SE/CBAM MLPs, has no correlation to measure). A batch norm whose
    channels hold a single value of the one image uses its running statistics for that
    call.
    """
    net = standard_init_copy(model).train()
    total = [0.0]

    def hook(module: nn.Module, inputs: object, output: Tensor) -> None:
        fmap = output[0].detach().flatten(1)
        if fmap.shape[0] < 2 or fmap.shape[1] < 2:
            return
        corr = torch.nan_to_num(torch.corrcoef(fmap.double()), nan=0.0, posinf=0.0, neginf=0.0)
        total[0] += float(torch.linalg.eigvalsh(corr)[0])

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    handles += [
        m.register_forward_pre_hook(_single_value_norms_use_running_stats)
        for m in net.modules()
        if isinstance(m, _BatchNorm)
    ]
    try:
        with torch.no_grad():
            net(x[:1])
    finally:
        for h in handles:
            h.remove()
    return total[0]


def zero_cost_scores(
    model: nn.Module, x: Tensor, y: Tensor, *, params: int, flops: int | None
) -> dict[str, float]:
    """Every score of :data:`SCORES` plus ``params`` and ``flops``, and ``seconds`` (the time
    the network-based scores took). The caller's random-number streams are untouched. Store
    :data:`ZERO_COST_VERSION` with the result."""
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
