"""Mixup, CutMix and the EMA warm-up, checked on values."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from nas.training.mixing import mix_batch
from nas.training.trainer import WeightEMA, ema_factor


def _two_flat_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Image 0 is all 0, image 1 all 1; labels 0 and 1."""
    x = torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)])
    return x, torch.tensor([0, 1])


@pytest.mark.parametrize("seed", range(6))
def test_mixup_mixes_images_and_labels_by_the_same_lambda(seed: int) -> None:
    x, y = _two_flat_images()
    mixed, target = mix_batch(x, y, 4, mixup_alpha=0.4, cutmix_alpha=0.0, rng=random.Random(seed))
    lam = random.Random(seed).betavariate(0.4, 0.4)  # the first draw after the mode choice
    assert target.shape == (2, 4) and torch.allclose(target.sum(1), torch.ones(2))
    assert torch.all(target[:, 2:] == 0)  # classes absent from the batch get nothing
    for i in range(2):
        value = mixed[i].unique()
        assert len(value) == 1  # a blend of two flat images is flat
        # the share of image 1 in the pixels is the weight of class 1 in the target
        assert float(value) == pytest.approx(float(target[i, 1]), abs=1e-6)
        own = float(target[i, y[i]])
        assert own == pytest.approx(lam, abs=1e-6) or own == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_target_weight_is_the_pasted_area(seed: int) -> None:
    x, y = _two_flat_images()
    mixed, target = mix_batch(x, y, 2, mixup_alpha=0.0, cutmix_alpha=1.0, rng=random.Random(seed))
    assert torch.allclose(target.sum(1), torch.ones(2))
    for i in range(2):
        assert set(mixed[i].unique().tolist()) <= {0.0, 1.0}  # pasted, not blended
        share_of_image_1 = float(mixed[i].mean())
        assert share_of_image_1 == pytest.approx(float(target[i, 1]), abs=1e-6)


def test_ema_factor_warms_up_to_the_decay() -> None:
    assert ema_factor(0.999, 0) == 0.0  # the first update copies the weights
    assert ema_factor(0.999, 1) == pytest.approx(2 / 11)
    assert ema_factor(0.999, 10) == pytest.approx(11 / 20)
    assert ema_factor(0.999, 10_000) == 0.999
    assert ema_factor(0.5, 5) == pytest.approx(0.4) and ema_factor(0.5, 20) == 0.5


def test_weight_ema_averages_weights_and_copies_counters() -> None:
    model = nn.Sequential(nn.Linear(2, 1, bias=False), nn.BatchNorm1d(1))
    ema = WeightEMA(model, decay=0.9)
    weight = model[0].weight
    with torch.no_grad():
        weight.fill_(1.0)
        ema.update(model)  # copies: 1.0
        weight.fill_(3.0)
        model[1].num_batches_tracked.fill_(7)
        ema.update(model)  # d = 2/11: 2/11 * 1 + 9/11 * 3
    expected = 2 / 11 * 1.0 + 9 / 11 * 3.0
    assert torch.allclose(ema.module[0].weight, torch.full((1, 2), expected))
    assert int(ema.module[1].num_batches_tracked) == 7
    assert ema.updates == 2
    assert not any(p.requires_grad for p in ema.module.parameters())
    again = WeightEMA(model, decay=0.9)
    again.load_state_dict(ema.state_dict())
    assert again.updates == 2
    assert torch.equal(again.module[0].weight, ema.module[0].weight)
