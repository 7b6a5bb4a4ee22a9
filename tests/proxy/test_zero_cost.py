"""Each zero-cost score on a tiny network whose value is worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas.models import build_model
from nas.proxy.zero_cost import SCORES, grad_norm, naswot, synflow, zero_cost_scores
from tests.conftest import small_config


def _linear(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def test_synflow_by_hand() -> None:
    """|W1| = [[1, 2], [3, 4]], |W2| = [[1, 2]], input (1, 1): hidden (3, 7), R = 17.
    dR/dW2 = (3, 7): sum |W2 * grad| = 3 + 14 = 17; dR/dW1[i, j] = W2[i]: sum = 3 + 14 = 17."""
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
