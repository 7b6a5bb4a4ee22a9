"""Each zero-cost score on a tiny network whose value is worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from nas.config import AttentionConfig, StageConfig
from nas.models import build_model
from nas.models.blocks import ResidualBlock
from nas.models.heads import Head
from nas.models.joins import WeightedJoin
from nas.proxy.zero_cost import (
    SCORES,
    ZERO_COST_VERSION,
    grad_norm,
    meco,
    naswot,
    standard_init_copy,
    synflow,
    synflow_per_layer,
    zero_cost_scores,
    zico,
)
from tests.conftest import small_config


def _linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def _conv1x1(weight: list[list[float]]) -> nn.Conv2d:
    layer = nn.Conv2d(len(weight[0]), len(weight), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight).view(len(weight), len(weight[0]), 1, 1))
    return layer


def test_synflow_by_hand() -> None:
    """|W1| = [[1, 2], [3, 4]], |W2| = [[1, 2]], input (1, 1): hidden (3, 7), R = 17.
    dR/dW2 = (3, 7): sum |W2 * grad| = 3 + 14 = 17; dR/dW1[i, j] = W2[i]: sum = 3 + 14 = 17.
    (No batch norm here, so the reference's BN handling leaves the value as it was.)"""
    net = nn.Sequential(_linear([[1, -2], [3, 4]]), nn.ReLU(), _linear([[-1, 2]]))
    assert synflow(net, torch.zeros(5, 2), torch.zeros(5, dtype=torch.long)) == pytest.approx(34)
    assert float(net[0].weight[0, 1].detach()) == -2  # the network itself is untouched


def test_naswot_by_hand() -> None:
    """W = I, inputs (1, 1), (1, -1), (-1, -1): codes 11, 10, 00 over N_A = 2 units;
    K = [[2, 1, 0], [1, 2, 1], [0, 1, 2]], det K = 4."""
    net = nn.Sequential(_linear([[1, 0], [0, 1]]), nn.ReLU())
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert naswot(net, x, torch.zeros(3, dtype=torch.long)) == pytest.approx(math.log(4))


def test_grad_norm_by_hand() -> None:
    """W = 0: uniform softmax (0.5, 0.5); for x = (1, 0), y = 0 the logit gradient is
    (-0.5, 0.5) and dL/dW = [[-0.5, 0], [0.5, 0]], of norm sqrt(0.5)."""
    net = _linear([[0, 0], [0, 0]])
    value = grad_norm(net, torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert value == pytest.approx(math.sqrt(0.5))


def test_zico_by_hand() -> None:
    """Linear W1 = I then Linear W2 = 0, images x1 = (1, 1) and x2 = (3, 1), both of class 0,
    split into the mini-batches {x1} and {x2}.

    Logits are 0, softmax (1/2, 1/2), logit gradient g = (-1/2, 1/2); the hidden layer is x.
    dL/dW2 = g x^T: [[-1/2, -1/2], [1/2, 1/2]] for x1, [[-3/2, -1/2], [3/2, 1/2]] for x2.
    First column: |g| = 1/2 and 3/2, mean 1, population std |3/2 - 1/2| / 2 = 1/2, ratio 2
    for each of its two weights; second column: the same gradient twice, std 0, left out.
    So S(W2) = 4. dL/dW1 = W2^T g x^T = 0 in both: every std is 0, S(W1) = 0 and W1 is left
    out (no log 0). ZiCo = log 4. (The sample std, ddof=1, would give 2 log(2 sqrt 2).)"""
    net = nn.Sequential(_linear([[1, 0], [0, 1]]), _linear([[0, 0], [0, 0]]))
    x = torch.tensor([[1.0, 1.0], [3.0, 1.0]])
    assert zico(net, x, torch.tensor([0, 0])) == pytest.approx(math.log(4))
    with pytest.raises(ValueError, match="at least 2 images"):
        zico(net, x[:1], torch.tensor([0]))


def test_meco_by_hand() -> None:
    """Three 1x1 convs on a 2-channel 2x2 image c1 = (1, 1, -1, -1), c2 = (1, 1, 1, -1).

    conv1 = diag(1, -1) gives (c1, -c2). c1 has mean 0 and squared norm 4; c2 - mean(c2) =
    (1/2, 1/2, 1/2, -3/2) has squared norm 3; their dot product is 2, so r(c1, c2) =
    2 / sqrt(12) = 1/sqrt(3) and r(c1, -c2) = -1/sqrt(3). The eigenvalues of [[1, r], [r, 1]]
    are 1 +- r: the minimum is 1 - 1/sqrt(3).
    conv2 = [[1, 0], [0, 0]] gives (c1, 0): the constant channel's correlations are NaN, set
    to 0, so the matrix is [[1, 0], [0, 0]] with minimum eigenvalue 0.
    conv3 (2 -> 1 channel) is not counted (a single channel would add 1).
    Only the first image's maps count: the second image is noise. MeCo = 1 - 1/sqrt(3)."""
    net = nn.Sequential(_conv1x1([[1, 0], [0, -1]]), _conv1x1([[1, 0], [0, 0]]), _conv1x1([[1, 1]]))
    first = torch.tensor([[[1.0, 1.0], [-1.0, -1.0]], [[1.0, 1.0], [1.0, -1.0]]])
    x = torch.stack([first, torch.randn(2, 2, 2)])
    assert meco(net, x, torch.zeros(2, dtype=torch.long)) == pytest.approx(1 - 1 / math.sqrt(3))


def test_meco_forwards_the_first_image_alone() -> None:
    """Batch norm in training mode normalises over what is forwarded, so forwarding the
    whole batch would change the first image's maps after the first ReLU."""
    model = build_model(small_config(input_size=16, num_classes=3))
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 3, (8,))
    assert meco(model, x, y) == meco(model, x[:1], y[:1]) != meco(model, x[1:], y[1:])


class _PreActBlock(ResidualBlock):
    """s = x + W relu(BN(x)), out = relu(s): a 2-channel block with an identity skip."""

    def __init__(self) -> None:
        super().__init__(2, 2, 1, "conv", None)
        self.body = nn.Sequential(
            nn.BatchNorm2d(2, eps=1e-12), nn.ReLU(), _conv1x1([[2, 0], [0, 2]])
        )


def _tiny_residual_network() -> nn.Module:
    block = _PreActBlock()
    bn = block.body[0]
    head = Head(2, 0.0, 2)
    with torch.no_grad():
        bn.weight.zero_()  # zero-started, as the builder leaves a block's last BN
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(4.0)
        head.fc.weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))
        head.fc.bias.copy_(torch.tensor([-9 / 4, 9 / 4]))
    return nn.Sequential(block, head)


def _tiny_batch() -> tuple[Tensor, Tensor]:
    u = torch.tensor([[1.0, 1, 1, 1], [-1, -1, -1, -1]])
    v = torch.tensor([[2.0, 0, 0, 0], [-2, 0, 0, 0]])
    return torch.stack([torch.stack([u, v]), torch.stack([v, u])]), torch.tensor([0, 0])


def test_every_score_by_hand_on_a_residual_network_with_batch_norm() -> None:
    """The network: x -> BN -> ReLU -> 1x1 conv W = 2I, plus the identity skip, then ReLU
    (a :class:`ResidualBlock`), global average pooling, a linear head V = [[1, 1], [-1, -1]]
    with bias b = (-9/4, 9/4). The BN weight is 0 (zero-started: scored as weight 1), its
    bias 0, eps 1e-12 (negligible), running mean 1 and running variance 4 (which no score
    uses: all run batch norm in training mode, and synflow drops it).

    Two 2x4 images of class 0 over 8 positions: u = (1, 1, 1, 1, -1, -1, -1, -1) and
    v = (2, 0, 0, 0, -2, 0, 0, 0); image A = (u, v) (channel 1, channel 2), B = (v, u). Every
    channel of every image has mean 0 and variance 1, so batch norm in training mode, over
    the batch or over one image, leaves x as it is: r = relu(BN(x)) = relu(x), and
    s = 2 relu(x) + x is 3x where x > 0 and x <= 0 elsewhere, so out = 3 relu(x).
    relu(u) = (1, 1, 1, 1, 0, 0, 0, 0) has mean 1/2 and relu(v) = (2, 0, ..., 0) mean 1/4:
    h_A = (3/2, 3/4), h_B = (3/4, 3/2); V h = (9/4, -9/4) for both, logits V h + b = 0,
    softmax (1/2, 1/2).

    * synflow: BN removed, weights |W| = 2I and |V| = ones, input of ones: r = 1, s = 2 + 1
      = 3, h = (3, 3). Head: dR/dV[j, k] = h_k = 3, sum |V dR/dV| = 4 * 3 = 12. Conv:
      dR/dW[k, l] = (sum_j |V[j, k]|) * mean(r_l) = 2, sum |W dR/dW| = 2 * 2 + 2 * 2 = 8.
      synflow = 20 (BN kept in eval mode: r = relu((1 - 1) / 2) = 0, h = (1, 1), 4 + 0 = 4).
    * naswot: the ReLU module's code relu(x) > 0 and the block's 3 relu(x) > 0 are both
      x > 0, 16 units each: A = (11110000, 10000000), B = (10000000, 11110000), Hamming
      distance 3 + 3 = 6 per layer. K = 2 [[16, 10], [10, 16]] = [[32, 20], [20, 32]],
      det K = 1024 - 400 = 624, naswot = log 624 (zero BN weight: log 348).
    * grad_norm: the mean loss of 2 images gives g_i = (p - e_0) / 2 = (-1/4, 1/4).
      dL/dV = sum_i g_i h_i^T = (-1/4, 1/4)^T (9/4, 9/4): four entries +-9/16, norm 9/8.
      dL/dh_i = V^T g_i = (-1/2, -1/2); dL/dW[k, l] = sum_i dL/dh_ik (1/8) M_i[k, l] with
      M_i[k, l] = sum_p [x_ik,p > 0] relu(x_il,p): M_A = [[4, 2], [1, 2]], M_B = [[2, 1],
      [2, 4]], dL/dW = -(1/16) [[6, 3], [3, 6]], norm sqrt(90) / 16 = 3 sqrt(10) / 16.
      grad_norm = 9/8 + 3 sqrt(10) / 16.
    * zico: mini-batches {A} and {B}, g = (-1/2, 1/2) each. dL/dV = g h^T: entries +-(3/4,
      3/8) for A, +-(3/8, 3/4) for B; each weight has mean|g| = 9/16 and std 3/16, ratio 3,
      S(V) = 4 * 3 = 12. dL/dh = (-1, -1), dL/dW = -(1/8) M_i: the pairs (4, 2), (2, 1),
      (1, 2), (2, 4) each have ratio (a + b) / |a - b| = 3, S(W) = 12. zico = 2 log 12.
    * meco: image A alone; the conv's output 2 relu(x_A) has channels (1, 1, 1, 1, 0, 0, 0,
      0) and (2, 0, ..., 0) up to the factor 2. Centred: a = (1/2 x 4, -1/2 x 4) and
      b = (7/4, -1/4 x 7); a.b = 7/8 - 3/8 + 4/8 = 1, |a|^2 = 2, |b|^2 = 56/16 = 7/2, so
      r = 1 / sqrt(7) and meco = 1 - 1/sqrt(7) (the head is linear, not counted; zero BN
      weight: a constant map, meco 0).
    """
    net = _tiny_residual_network()
    x, y = _tiny_batch()
    expected = {
        "synflow": 20.0,
        "naswot": math.log(624),
        "grad_norm": 9 / 8 + 3 * math.sqrt(10) / 16,
        "zico": 2 * math.log(12),
        "meco": 1 - 1 / math.sqrt(7),
    }
    assert set(expected) == set(SCORES.names())
    for name, value in expected.items():
        assert SCORES[name](net, x, y) == pytest.approx(value), name
    assert synflow_per_layer(net, x) == pytest.approx({"0.body.2": 8.0, "1.fc": 12.0})
    assert not net[0].body[0].weight.any()  # the caller's BN is still zero-started


def test_the_standard_init_copy_ungates_only_zero_starts() -> None:
    """Zero BN weights and zero join gains become 1, dropout is off; a BN weight or a gain
    that is not all zero is copied as it is, and the model itself is untouched."""
    cfg = small_config(AttentionConfig(type="se", join="weighted", reduction=4), dropout=0.3)
    model = build_model(cfg)
    joins = [m for m in model.modules() if isinstance(m, WeightedJoin)]
    zero_bns = [
        n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and not m.weight.any()
    ]
    assert len(joins) == len(zero_bns) == 3  # one per block
    before = dict(model.named_modules())
    with torch.no_grad():
        joins[0].gain.fill_(0.25)
        before[zero_bns[0]].weight[0] = 0.5
    copied = dict(standard_init_copy(model).named_modules())
    kept = copied[zero_bns[0]].weight
    assert kept[0].item() == 0.5 and not kept[1:].any()
    for name in zero_bns[1:]:
        assert torch.equal(copied[name].weight, torch.ones(copied[name].weight.shape))
    gains = [m.gain.item() for m in copied.values() if isinstance(m, WeightedJoin)]
    assert gains == [0.25, 1.0, 1.0]
    assert all(m.p == 0 for m in copied.values() if isinstance(m, nn.Dropout))
    assert model.head.dropout.p == 0.3 and joins[1].gain.item() == 0
    assert all(not before[name].weight.any() for name in zero_bns[1:])


def _with_blocks(blocks: int) -> nn.Module:
    cfg = small_config(input_size=16, num_classes=3)
    cfg = cfg.replace(stages=tuple(StageConfig(s.width, blocks, s.stride) for s in cfg.stages))
    torch.manual_seed(0)
    return build_model(cfg)


def test_a_deeper_body_changes_every_score() -> None:
    """1 vs 3 blocks per stage (10k vs 31k parameters) on 8 random 16x16 images, seed 0.

    Version 1 (zero-started BN and gain, BN kept in synflow): synflow 1312 -> 1418, grad_norm
    1.336 -> 1.343, naswot 69.07 -> 76.43: the extra blocks were all but invisible.
    Version 2: synflow 1.42e8 -> 8.42e20, grad_norm 3.47 -> 15.46, naswot 68.87 -> 75.77,
    zico 83.9 -> 187.8, meco 1.60 -> 3.71."""
    torch.manual_seed(0)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 3, (8,))
    shallow, deep = (
        {name: score(_with_blocks(b), x, y) for name, score in SCORES.items()} for b in (1, 3)
    )
    assert deep["synflow"] > 1e6 * shallow["synflow"]
    assert deep["grad_norm"] > 2 * shallow["grad_norm"]
    for name in ("naswot", "zico", "meco"):
        assert deep[name] != pytest.approx(shallow[name], rel=0.01), name


@pytest.mark.parametrize(
    "attention",
    [AttentionConfig(), AttentionConfig(type="mhsa", join="weighted", heads=2)],
    ids=["plain", "mhsa-weighted"],
)
def test_every_weight_of_a_residual_network_adds_to_synflow(attention: AttentionConfig) -> None:
    """Every Conv2d and Linear weight (what the reference scores; biases and BN parameters do
    not count) of the small residual network adds a positive share: with the zero-started BN
    kept, 21 of the plain network's 29 parameter tensors added exactly 0, and a zero gain
    hides the attention behind a weighted join. (Sigmoid gates, SE, CBAM, spatial, saturate
    on the ones-input, so their own weights do add exactly 0; multi-head attention does not.)"""
    cfg = small_config(attention, input_size=16, num_classes=3)
    model = build_model(cfg)
    shares = synflow_per_layer(model, torch.zeros(1, 3, 16, 16))
    layers = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert sorted(shares) == sorted(layers)
    assert all(share > 0 for share in shares.values()), shares


def test_scores_run_where_batch_norm_sees_one_value_and_relu_works_in_place() -> None:
    """Residual attention after the last stage (4x4 maps of 16x16 images) with a 3-step mask
    pools down to 1x1 maps, where meco's one image leaves its batch norms a single value per
    channel; its pre-activation units (x + conv(relu(bn(x))), in-place ReLU) take the
    block's ReLU output x, which synflow without BN must not overwrite (autograd saved it)."""
    attention = AttentionConfig(type="residual_attn", placement="after_stage", mask_depth=3)
    model = build_model(small_config(attention, input_size=16, num_classes=3))
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 3, (4,))
    assert all(math.isfinite(score(model, x, y)) for _, score in SCORES.items())


def test_all_scores_on_a_real_network_leave_the_rng_and_weights_alone() -> None:
    torch.manual_seed(0)
    model = build_model(small_config(input_size=16, num_classes=3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 3, (8,))
    state = torch.random.get_rng_state()
    scores = zero_cost_scores(model, x, y, params=123, flops=456)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(scores) == {"params", "flops", "seconds", *SCORES.names()}
    assert scores["params"] == 123 and scores["flops"] == 456
    assert all(math.isfinite(scores[name]) and scores[name] > 0 for name in SCORES.names())
    assert ZERO_COST_VERSION == 2


def test_a_candidates_scores_see_batches_in_the_trainers_memory_format(
    image_folder: Path,
) -> None:
    """Decoded images are a channels_last view; on the CPU the network is contiguous. Fed
    the view, ZiCo's backward corrupted the heap in torch 2.14 (workers died of "double free
    or corruption"): every score must see the batch laid out as the trainer feeds it."""
    from nas.data import load_dataset
    from nas.proxy.context import ProxySpec, candidate_zero_cost, proxy_context

    data = load_dataset("imagefolder", str(image_folder))
    assert data.train_x.is_contiguous(memory_format=torch.channels_last)  # as decoded
    ctx = proxy_context(ProxySpec(1, 60, 12, 16, 0.8, "standard"), data, torch.device("cpu"), 0)
    model = build_model(small_config(attention=AttentionConfig("cbam", "after_stage")))
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous()))
    scores = candidate_zero_cost(ctx, model, params=1, flops=None)
    assert seen and all(seen) and scores["zico"] is not None
