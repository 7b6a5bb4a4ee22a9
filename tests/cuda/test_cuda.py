"""The CUDA path end to end, on tiny data: a proxy search, a winner epoch with EMA, the
export rebuilt, and several ``nas search`` workers on one GPU.

Skipped where no CUDA GPU is present. Each test asserts what a wrong CUDA path would
break: where the weights live, that training ran in bf16 autocast on channels_last
tensors, that the exported model reproduces the trained one's outputs on the GPU, and that
each worker process sees exactly one GPU.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import Tensor, nn

from nas.cli.main import main
from nas.config import ArchConfig
from nas.data import load_dataset
from nas.models import build_model
from nas.training import Trainer, full_recipe
from nas.training.placement import assign_devices, visible_gpus, worker_env
from nas.winners import WinnerResult, train_winner
from tests.conftest import make_study, run_nas, tiny_search

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.slow,
]

CUDA = torch.device("cuda")


# ------------------------------------------------------------------ spies on the trainer
@dataclass(frozen=True)
class TrainingForward:
    """What one forward pass of a training step saw."""

    input_device: str
    input_channels_last: bool
    autocast: bool
    output_dtype: torch.dtype
    param_devices: frozenset[str]
    conv_weights_channels_last: bool


def spy_training(monkeypatch: pytest.MonkeyPatch) -> list[TrainingForward]:
    """Record every forward pass of a training step (not evaluation, not zero-cost scores)
    of every :class:`Trainer` from now on."""
    seen: list[TrainingForward] = []
    original = Trainer._train_epoch

    def spied(self: Trainer, epoch: int, total: int) -> tuple[float, int]:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
            x = args[0]
            convs = [
                m.weight
                for m in module.modules()
                if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)
            ]  # a 1x1 kernel is contiguous in both memory formats
            seen.append(
                TrainingForward(
                    x.device.type,
                    x.is_contiguous(memory_format=torch.channels_last),
                    torch.is_autocast_enabled(x.device.type),
                    output.dtype,
                    frozenset(p.device.type for p in module.parameters()),
                    bool(convs)
                    and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs),
                )
            )

        handle = self.model.register_forward_hook(hook)
        try:
            return original(self, epoch, total)
        finally:
            handle.remove()

    monkeypatch.setattr(Trainer, "_train_epoch", spied)
    return seen


def capture_trainers(monkeypatch: pytest.MonkeyPatch) -> list[Trainer]:
    """Every :class:`Trainer` that fits from now on, for a look at its model and EMA."""
    trainers: list[Trainer] = []
    original = Trainer.fit

    def capturing(self: Trainer, *args: Any, **kw: Any) -> Any:
        trainers.append(self)
        return original(self, *args, **kw)

    monkeypatch.setattr(Trainer, "fit", capturing)
    return trainers


def assert_trained_on_cuda_in_bf16_channels_last(seen: list[TrainingForward]) -> None:
    assert seen, "no training step ran"
    for f in seen:
        assert f.input_device == "cuda" and f.param_devices == {"cuda"}, f
        assert f.autocast and f.output_dtype == torch.bfloat16, f
        assert f.input_channels_last and f.conv_weights_channels_last, f


# ------------------------------------------------------------------ (a) a proxy search
def test_proxy_trials_train_on_cuda_in_bf16_channels_last(
    tiny_space: Path, image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = spy_training(monkeypatch)
    trainers = capture_trainers(monkeypatch)
    study = tiny_search(
        tiny_space, image_folder, tmp_path / "s.db", "c", device="cuda", trials=2, proxy_epochs=2
    )
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 2
    for t in complete:
        accuracy = t.user_attrs["accuracy"]
        assert math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0
        assert t.values[0] == accuracy and len(t.user_attrs["curve"]) == 2
        assert t.user_attrs["device"] == "cuda" and t.user_attrs["images_per_s"] > 0
    assert_trained_on_cuda_in_bf16_channels_last(seen)
    assert len(trainers) == 2
    for trainer in trainers:
        assert trainer.cuda and trainer.memory_format == torch.channels_last
        assert trainer.train_x.device.type == "cuda" and trainer.eval_x.device.type == "cuda"
        assert trainer.train_x.dtype == torch.uint8  # decoded once, augmented on the GPU
        assert {p.device.type for p in trainer.model.parameters()} == {"cuda"}


def test_nas_search_cli_on_cuda(tiny_space: Path, tmp_path: Path) -> None:
    db = tmp_path / "fake.db"
    out = run_nas(
        "search", "--space", str(tiny_space), "--dataset", "fake", "--trials", "1",
        "--proxy-epochs", "1", "--storage", f"sqlite:///{db}", "--study", "f", "--seed", "0",
        "--device", "cuda", "--quiet", "--no-early-stopping",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "validation images on cuda" in out.stderr
    study = optuna.load_study(study_name="f", storage=f"sqlite:///{db}")
    (trial,) = study.get_trials(states=(TrialState.COMPLETE,))
    assert trial.user_attrs["device"] == "cuda" and math.isfinite(trial.user_attrs["accuracy"])


# ------------------------------------------------------------------ (b) a winner with EMA
@dataclass
class CudaWinner:
    """One winner trained for an epoch on CUDA, and what trained it."""

    db: Path
    result: WinnerResult
    trainer: Trainer
    seen: list[TrainingForward]


@pytest.fixture
def cuda_winner(tmp_path: Path, image_folder: Path, monkeypatch: pytest.MonkeyPatch) -> CudaWinner:
    db = tmp_path / "w.db"
    study = make_study(db, image_folder, {"none": 0.6, "se": 0.7, "cbam": 0.8})
    data = load_dataset("imagefolder", image_folder)
    seen = spy_training(monkeypatch)
    trainers = capture_trainers(monkeypatch)
    recipe = full_recipe(1).replace(batch_size=16)
    assert recipe.ema_decay  # the full recipe keeps an EMA of the weights
    result = train_winner(
        study,
        study.trials[2],  # cbam
        data,
        recipe,
        device=CUDA,
        seed=0,
        out_dir=tmp_path / "winners",
    )
    (trainer,) = trainers
    return CudaWinner(db, result, trainer, seen)


def test_a_winner_epoch_with_ema_on_cuda(cuda_winner: CudaWinner) -> None:
    result, trainer = cuda_winner.result, cuda_winner.trainer
    assert result.epochs == 1 and result.resumed_from == 0
    for accuracy in (result.val_accuracy, result.full_accuracy):
        assert math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0
    assert_trained_on_cuda_in_bf16_channels_last(cuda_winner.seen)
    ema = trainer.ema
    assert ema is not None and ema.updates == trainer.steps_per_epoch > 1
    averaged = ema.module.state_dict()
    assert {t.device.type for t in averaged.values()} == {"cuda"}
    assert not any(p.requires_grad for p in ema.module.parameters())
    current = trainer.model.state_dict()
    assert any(
        not torch.equal(averaged[k], current[k])
        for k in averaged
        if averaged[k].is_floating_point()
    ), "the EMA is a copy of the weights, not an average"
    # what was saved is the EMA, on the host
    weights = torch.load(result.checkpoint.with_name("trial-2-weights.pt"), weights_only=True)
    assert weights.keys() == averaged.keys()
    for k, v in weights.items():
        assert v.device.type == "cpu" and torch.equal(v, averaged[k].cpu()), k
    checkpoint = torch.load(result.checkpoint, map_location="cpu", weights_only=False)
    assert checkpoint["ema"]["updates"] == ema.updates
    attrs = optuna.load_study(study_name="w", storage=f"sqlite:///{cuda_winner.db}").trials[2]
    assert attrs.user_attrs["full_device"] == "cuda"
    assert attrs.user_attrs["full_recipe"]["ema_decay"] == ema.decay


# ------------------------------------------------------------------ (c) the export rebuilt
def test_the_export_rebuilds_the_cuda_trained_model(
    cuda_winner: CudaWinner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # full fp32 on both sides, so that the two memory formats differ only by rounding
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    out = tmp_path / "export" / "winner.json"
    code = main(
        [
            "export", "--storage", f"sqlite:///{cuda_winner.db}", "--study", "w", "--trial",
            "2", "--weights", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["trial"] == 2 and doc["meta"]["weights"] == "winner.pt"
    trained = cuda_winner.trainer.scored_model.eval()  # the EMA, on the GPU, channels_last
    exported = torch.load(out.with_suffix(".pt"), weights_only=True)
    for k, v in trained.state_dict().items():
        assert torch.equal(exported[k], v.cpu()), k
    rebuilt = build_model(ArchConfig.from_file(out), weights=out.with_suffix(".pt")).to(CUDA)
    rebuilt.eval()
    assert {p.device.type for p in rebuilt.parameters()} == {"cuda"}
    torch.manual_seed(0)
    x = torch.randn(8, 3, 16, 16, device=CUDA)
    with torch.no_grad():
        expected = trained(x.contiguous(memory_format=torch.channels_last)).float()
        got = rebuilt(x)
        got_cl = rebuilt.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last)
        )
    assert got.device.type == "cuda" and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_cl, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(out.with_suffix(".onnx")))
    (onnx_out,) = session.run(None, {"images": x[:1].cpu().numpy()})
    torch.testing.assert_close(torch.from_numpy(onnx_out), expected[:1].cpu(), atol=1e-3, rtol=1e-3)


# ------------------------------------------------------------------ workers on one GPU
def parent_gpus() -> list[str]:
    """The GPUs this process sees, as a child's ``CUDA_VISIBLE_DEVICES`` names them."""
    return visible_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count())


SEES = (
    "import json, torch; "
    "print(json.dumps([torch.cuda.device_count(), str(torch.cuda.get_device_properties(0).uuid)]))"
)


def test_each_worker_process_sees_exactly_its_one_gpu() -> None:
    gpus = parent_gpus()
    placements = assign_devices("cuda", len(gpus) + 1)  # one more worker than GPUs
    assert [p.gpu for p in placements] == [*gpus, gpus[0]]
    assert {p.device for p in placements} == {"cuda"}
    for i, placement in enumerate(placements):
        env = worker_env(placement, 1, os.environ)
        out = subprocess.run(
            [sys.executable, "-c", SEES], capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 0, out.stderr
        count, uuid = json.loads(out.stdout)
        assert count == 1, placement
        assert uuid == str(torch.cuda.get_device_properties(i % len(gpus)).uuid), placement


def test_two_workers_share_one_gpu(tiny_space: Path, image_folder: Path, tmp_path: Path) -> None:
    gpu = parent_gpus()[0]
    label = gpu if gpu.startswith(("GPU-", "MIG-")) else f"GPU {gpu}"
    url = f"sqlite:///{tmp_path}/two.db"
    out = run_nas(
        "search", "--space", str(tiny_space), "--dataset", "imagefolder", "--data-dir",
        str(image_folder), "--trials", "4", "--proxy-epochs", "2", "--storage", url, "--study",
        "two", "--seed", "0", "--device", "cuda", "--quiet", "--no-early-stopping",
        "--workers", "2",
        env={"CUDA_VISIBLE_DEVICES": gpu, "NAS_SLOW_EPOCH": "1.0"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"started 2 workers on 1 GPU ({label}: workers 0, 1)" in out.stderr
    assert f"[worker 0 {label}]" in out.stderr and f"[worker 1 {label}]" in out.stderr
    assert "Traceback" not in out.stderr
    study = optuna.load_study(study_name="two", storage=url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 4
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both trained, side by side
    for t in complete:
        assert t.user_attrs["device"] == "cuda" and math.isfinite(t.user_attrs["accuracy"])


def test_latency_and_peak_memory_are_measured_on_cuda() -> None:
    """On CUDA the measurement runs as the proxy trains there (bf16 autocast, channels_last,
    batch 32) and the peak memory is measured, not estimated; a larger batch needs more."""
    from nas.hardware.context import HardwareContext
    from nas.hardware.measure import measure
    from tests.conftest import small_config

    ctx = HardwareContext.current("cuda")
    assert (ctx.device, ctx.batch, ctx.precision, ctx.memory_format) == (
        "cuda",
        32,
        "bf16",
        "channels_last",
    )
    assert not ctx.estimated_memory and ctx.device_name == torch.cuda.get_device_name()
    small = measure(small_config(), ctx)
    big = measure(small_config(), HardwareContext.current("cuda", batch=256))
    assert small.runs == 30 and 0 < small.latency_ms < 1_000
    assert small.memory_bytes is not None and big.memory_bytes is not None
    assert 0 < small.memory_bytes < big.memory_bytes
