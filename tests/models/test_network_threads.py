"""Building on the meta device in one thread never leaves another thread's model
uninitialised (the cause of trainer tests failing with NaN losses once a dashboard thread had
counted a candidate while the main thread built one)."""

from __future__ import annotations

import threading

import torch

from nas.models import build_model
from nas.models.network import skip_layer_init
from tests.conftest import small_config


def _weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_model(small_config())
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_meta_build_in_another_thread_does_not_skip_this_threads_init() -> None:
    reference = _weights()
    inside, release = threading.Event(), threading.Event()

    def hold_skip() -> None:
        with skip_layer_init():
            inside.set()
            release.wait(30)

    other = threading.Thread(target=hold_skip)
    other.start()
    try:
        assert inside.wait(30)
        during = _weights()  # built while the other thread skips initialisation
    finally:
        release.set()
        other.join(30)
    for key, value in reference.items():
        assert torch.equal(during[key], value), key
    assert all(torch.equal(_weights()[k], v) for k, v in reference.items())


def test_overlapping_meta_builds_leave_initialisation_working() -> None:
    """Two threads enter and leave the skip in an interleaved order; afterwards every model
    is initialised (swapping class methods in and out left them skipped for good)."""
    reference = _weights()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with skip_layer_init():
            a_in.set()
            b_in.wait(30)
        a_out.set()

    def b() -> None:
        a_in.wait(30)
        with skip_layer_init():
            b_in.set()
            a_out.wait(30)

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    after = _weights()
    for key, value in reference.items():
        assert torch.equal(after[key], value), key
    meta = build_model(small_config(), device="meta")
    assert all(p.device.type == "meta" for p in meta.parameters())
