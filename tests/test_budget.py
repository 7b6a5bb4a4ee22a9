"""The budget check's refusal of a limit below the space's cheapest candidate: the cheapest
candidate it names must really be the cheapest, or a limit some candidates meet is refused."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import pytest

from nas.budget import Budget, cheapest_candidate, measure_metric
from nas.errors import ConfigError, NasError
from nas.space import load_space
from tests.conftest import ROOT


@dataclass(frozen=True)
class Cifar:
    in_channels: int = 3
    input_size: int = 32
    num_classes: int = 10


def _sampled_minimum(space_file: str, metric: str, n: int) -> float:
    """The smallest ``metric`` among ``n`` random candidates of the space."""
    space = load_space(str(ROOT / "search_spaces" / space_file))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = []
    for _ in range(n):
        try:
            arch = space.suggest(study.ask(), in_channels=3, input_size=32, num_classes=10)
        except ConfigError:
            continue
        values.append(measure_metric(arch, metric))
    return min(values)


@pytest.mark.parametrize(
    ("space_file", "metric", "n"),
    [
        ("small_cifar.toml", "params", 150),
        ("small_cifar.toml", "flops", 150),
        ("attention_resnet.toml", "params", 150),
        ("attention_resnet.toml", "flops", 25),  # its FLOPs count takes longer
    ],
)
def test_the_cheapest_candidate_is_no_costlier_than_any_sampled_one(
    space_file: str, metric: str, n: int
) -> None:
    """FLOPs fall with a stage's stride (it runs at a lower resolution) while parameters do
    not: a search for the cheapest that keeps every stride at its smallest missed the
    cheapest candidate by FLOPs (3.91M named against 1.87M sampled in small_cifar)."""
    space = load_space(str(ROOT / "search_spaces" / space_file))
    cheapest, _ = cheapest_candidate(space, Cifar(), metric)
    assert cheapest <= _sampled_minimum(space_file, metric, n)


def test_a_flops_limit_that_strided_candidates_meet_is_not_refused() -> None:
    space = load_space(str(ROOT / "search_spaces" / "small_cifar.toml"))
    Budget({"params": 5e6, "flops": 2.5e6}).check_reachable(space, Cifar())  # 1.87M exists
    with pytest.raises(NasError, match=r"FLOPs limit 1\.00M is below the cheapest .*1\.87M"):
        Budget({"params": 5e6, "flops": 1e6}).check_reachable(space, Cifar())


def test_a_space_with_no_buildable_candidate_says_why() -> None:
    """Images larger than any network is built for: the message named no reason."""
    space = load_space(str(ROOT / "search_spaces" / "small_cifar.toml"))
    with pytest.raises(NasError, match=r"can be built: input_size must be at most 4,096 pixels"):
        cheapest_candidate(space, Cifar(input_size=5000))
