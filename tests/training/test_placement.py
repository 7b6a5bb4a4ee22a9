"""``nas search --workers K`` on GPUs: each worker process sees one GPU (its own
``CUDA_VISIBLE_DEVICES``) and trains on ``--device cuda``; tested without a GPU."""

from __future__ import annotations

import pytest
import torch

from nas.errors import NasError
from nas.training.placement import (
    Placement,
    assign_devices,
    place_workers,
    started_message,
    visible_gpus,
    worker_env,
)


def gpus_of(placements: list[Placement]) -> list[str | None]:
    return [p.env.get("CUDA_VISIBLE_DEVICES") for p in placements]


def test_five_workers_over_visible_2_3_each_see_one_gpu() -> None:
    placements = place_workers("cuda", 5, visible_gpus("2,3", 2))
    assert gpus_of(placements) == ["2", "3", "2", "3", "2"]
    assert [p.device for p in placements] == ["cuda"] * 5  # not cuda:0 / cuda:1
    assert [p.label for p in placements] == ["GPU 2", "GPU 3", "GPU 2", "GPU 3", "GPU 2"]


def test_auto_without_cuda_visible_devices_uses_every_gpu_round_robin() -> None:
    placements = place_workers("auto", 4, visible_gpus(None, 3))
    assert gpus_of(placements) == ["0", "1", "2", "0"]
    assert {p.device for p in placements} == {"cuda"}


def test_more_workers_than_gpus_share_them() -> None:
    placements = place_workers("cuda", 3, ["0"])
    assert gpus_of(placements) == ["0", "0", "0"]
    assert {p.device for p in placements} == {"cuda"}


def test_cuda_n_pins_every_worker_to_the_nth_visible_gpu() -> None:
    placements = place_workers("cuda:1", 3, visible_gpus("4,6", 2))
    assert gpus_of(placements) == ["6", "6", "6"]
    assert {p.device for p in placements} == {"cuda"}
    with pytest.raises(NasError, match=r"--device cuda:2: this machine shows 2 GPU\(s\)"):
        place_workers("cuda:2", 2, ["4", "6"])


def test_visible_gpus_parses_the_parents_list() -> None:
    assert visible_gpus(None, 0) == []
    assert visible_gpus("", 0) == []
    assert visible_gpus(None, 2) == ["0", "1"]
    assert visible_gpus(" 2, 3 ", 2) == ["2", "3"]
    # CUDA stops at an entry it cannot find: only the first `count` entries are real GPUs
    assert visible_gpus("1,7,3", 1) == ["1"]
    uuids = "GPU-1a2b,MIG-3c4d"
    placements = place_workers("cuda", 3, visible_gpus(uuids, 2))
    assert gpus_of(placements) == ["GPU-1a2b", "MIG-3c4d", "GPU-1a2b"]
    assert placements[0].label == "GPU-1a2b"


def test_cpu_behaviour_is_unchanged() -> None:
    for gpus in ([], ["0", "1"]):
        cpu = place_workers("cpu", 3, gpus)
        assert [p.device for p in cpu] == ["cpu"] * 3
        assert [p.env for p in cpu] == [{}] * 3 and [p.label for p in cpu] == ["cpu"] * 3
    auto = place_workers("auto", 2, [])
    assert [p.device for p in auto] == ["cpu", "cpu"] and all(p.gpu is None for p in auto)
    # asked for CUDA where there is none: passed on as asked, the worker says why it can't
    assert [p.device for p in place_workers("cuda", 2, [])] == ["cuda", "cuda"]
    assert [p.device for p in place_workers("cuda:1", 2, [])] == ["cuda:1", "cuda:1"]


def test_worker_env_sets_one_gpu_and_the_threads_and_keeps_the_rest() -> None:
    base = {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "2,3", "OMP_NUM_THREADS": "16"}
    env = worker_env(Placement("cuda", "3"), 4, base)
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "3", "OMP_NUM_THREADS": "4"}
    assert base["CUDA_VISIBLE_DEVICES"] == "2,3"  # the parent's is not touched
    cpu = worker_env(Placement("cpu"), 2, {"PATH": "/bin"})
    assert cpu == {"PATH": "/bin", "OMP_NUM_THREADS": "2"}


def test_assign_devices_reads_cuda_and_the_parents_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    placements = assign_devices("auto", 5, {"CUDA_VISIBLE_DEVICES": "2,3"})
    assert gpus_of(placements) == ["2", "3", "2", "3", "2"]
    assert {p.device for p in placements} == {"cuda"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,1")
    assert gpus_of(assign_devices("cuda", 3)) == ["5", "1", "5"]  # os.environ by default
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert [p.device for p in assign_devices("auto", 2)] == ["cpu", "cpu"]


def test_started_message_says_which_gpu_each_worker_uses() -> None:
    placements = place_workers("cuda", 5, ["2", "3"])
    assert started_message(placements, 3) == (
        "started 5 workers on 2 GPUs (GPU 2: workers 0, 2, 4; GPU 3: workers 1, 3), "
        "3 CPU threads each"
    )
    assert started_message(place_workers("auto", 2, ["0"]), 8) == (
        "started 2 workers on 1 GPU (GPU 0: workers 0, 1), 8 CPU threads each"
    )
    assert started_message(place_workers("cuda", 1, ["0", "1"]), 8) == (
        "started 1 worker on 1 GPU (GPU 0: worker 0), 8 CPU threads each"
    )
    assert started_message(place_workers("cpu", 2, []), 1) == (
        "started 2 workers on cpu, cpu (1 CPU threads each)"
    )
