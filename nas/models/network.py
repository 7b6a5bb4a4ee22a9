"""The one network class and the one builder behind every preset and search-space point."""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nas.config import ArchConfig
from nas.errors import ConfigError, first_line
from nas.models.imported import from_torchvision, is_torchvision_resnet, shape_text
from nas.models.plan import plan


class Network(nn.Module):
    """A ResNet-style classifier with attention where its config says.

    Layout: ``stem`` -> ``stages`` (blocks, and attention modules after blocks or stages)
    -> ``extra`` (optional conv) -> ``head``, built unit by unit from
    :func:`nas.models.plan.plan`. The forward pass is the plain sequence of :meth:`units`.
    """

    def __init__(self, cfg: ArchConfig, *, init: bool = True) -> None:
        super().__init__()
        self.config = cfg
        stages: list[list[nn.Module]] = [[] for _ in cfg.stages]
        self.stem: nn.Module
        self.head: nn.Module
        self.extra: nn.Module = nn.Identity()
        for unit in plan(cfg):
            module = unit.spec.build()
            if unit.stage is not None:
                stages[unit.stage].append(module)
            else:
                setattr(self, unit.name, module)
        self.stages: list[nn.Sequential] = nn.ModuleList(  # type: ignore[assignment]
            nn.Sequential(*units) for units in stages
        )
        if init:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init for convs, unit BN, zero-init of each block's last BN (Goyal et al.)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            body = getattr(m, "body", None)
            if isinstance(body, nn.Sequential) and isinstance(body[-1], nn.Sequential):
                last_bn = body[-1][-1]
                if isinstance(last_bn, nn.BatchNorm2d):
                    nn.init.zeros_(last_bn.weight)

    def units(self) -> Iterator[tuple[str, nn.Module]]:
        """The network's parts in forward order, with their module paths."""
        yield "stem", self.stem
        for i, stage in enumerate(self.stages):
            for j, unit in enumerate(stage):
                yield f"stages.{i}.{j}", unit
        if self.config.extra_conv:
            yield "extra", self.extra
        yield "head", self.head

    def forward(self, x: Tensor) -> Tensor:
        for _, unit in self.units():
            x = unit(x)
        return x


_INIT_METHODS: tuple[tuple[type, str], ...] = (
    (nn.modules.conv._ConvNd, "reset_parameters"),
    (nn.Linear, "reset_parameters"),
    (nn.modules.batchnorm._NormBase, "reset_parameters"),
)

#: Whether this thread is inside :func:`skip_layer_init`.
_SKIPPING = threading.local()
_INSTALL_LOCK = threading.Lock()
_installed = False


def _skippable(method: Any) -> Any:
    """``method`` (a layer's ``reset_parameters``), doing nothing while this thread is inside
    :func:`skip_layer_init`."""

    @functools.wraps(method)
    def reset_parameters(self: nn.Module) -> None:
        if getattr(_SKIPPING, "depth", 0) == 0:
            method(self)

    return reset_parameters


def _install_skippable_init() -> None:
    """Wrap the layers' ``reset_parameters`` once per process (see :func:`skip_layer_init`)."""
    global _installed
    with _INSTALL_LOCK:
        if not _installed:
            for cls, name in _INIT_METHODS:
                setattr(cls, name, _skippable(cls.__dict__[name]))
            _installed = True


@contextlib.contextmanager
def skip_layer_init() -> Iterator[None]:
    """Skip the layers' own weight initialisation while building on the meta device, where
    it is pointless and most of the cost of building.

    Only in the calling thread: the layers' ``reset_parameters`` are wrapped once per process
    to check a thread-local depth, so a model built at the same time in another thread is
    initialised as usual (swapping the class methods in and out instead would let one
    thread's build skip another's initialisation, and two overlapping swaps could leave
    every later model of the process uninitialised)."""
    _install_skippable_init()
    _SKIPPING.depth = getattr(_SKIPPING, "depth", 0) + 1
    try:
        yield
    finally:
        _SKIPPING.depth -= 1


@contextlib.contextmanager
def on_meta() -> Iterator[None]:
    """Build modules on the meta device (shapes only, no memory, no initialisation)."""
    with torch.device("meta"), skip_layer_init():
        yield


def build_model(
    config: ArchConfig | Mapping[str, Any],
    *,
    weights: str | Path | None = None,
    device: torch.device | str | None = None,
) -> Network:
    """Build the network an architecture config describes.

    Args:
        config: an :class:`~nas.config.ArchConfig`, its ``to_dict()`` form, or the dict of an
            exported architecture file.
        weights: optional path of a state dict (or a checkpoint holding one under ``ema``,
            ``model`` or ``state_dict``) to load, e.g. trained weights from ``nas export``.
        device: where to create the parameters; ``"meta"`` builds without allocating memory.

    Raises:
        ConfigError: if the config cannot be built, the device is unknown, or the weights do
            not fit it.
    """
    cfg = config if isinstance(config, ArchConfig) else ArchConfig.from_dict(config)
    if device is not None and not isinstance(device, torch.device):
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):  # torch's own message lists twenty device types
            raise ConfigError(
                f"unknown device {device!r}; use cpu, cuda, cuda:N or meta (to count only)"
            ) from None
    meta = device is not None and device.type == "meta"
    with contextlib.ExitStack() as stack:
        if meta:
            stack.enter_context(on_meta())
        elif device is not None:
            stack.enter_context(device)
        model = Network(cfg, init=not meta)
    if weights is not None:
        load_weights(model, weights, cfg)
    return model


def load_weights(model: nn.Module, path: str | Path, cfg: ArchConfig | None = None) -> None:
    """Load a state dict saved by ``torch.save`` into ``model`` (strict key and shape check),
    or, given the model's ``cfg``, a torchvision ResNet's (``torch.save(resnet18(weights=
    ...).state_dict(), path)``): every unit whose shapes agree, and a warning naming what
    keeps its initial values (:mod:`nas.models.imported`)."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # not a file, not a torch file, unpicklable content, ...
        raise ConfigError(f"cannot load weights from {path}: {first_line(exc, 160)}") from None
    if isinstance(state, dict):
        for key in ("ema", "model", "state_dict"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds a {type(state).__name__}, not a state dict of weights")
    if cfg is not None and is_torchvision_resnet(state):
        _load_torchvision(model, state, cfg, path)
        return
    try:
        model.load_state_dict(state)
    except RuntimeError:
        detail = _mismatch(model.state_dict(), state)
        raise ConfigError(
            f"weights in {path} do not fit this architecture ({detail}); load them with the "
            "architecture they were trained with (the .json that nas export --weights wrote "
            "beside them)"
        ) from None


def _load_torchvision(
    model: nn.Module, state: dict[str, Any], cfg: ArchConfig, path: str | Path
) -> None:
    """Load the units of torchvision ResNet ``state`` that fit ``model``; warn of the rest.

    Raises:
        ConfigError: when no unit fits (other widths or block type).
    """
    own = model.state_dict()
    loaded, kept = from_torchvision(state, cfg, own)
    if not loaded:
        raise ConfigError(
            f"no layer of the torchvision ResNet in {path} fits this architecture "
            f"({_few(kept)}): its stages need the widths and block type of that ResNet"
        )
    model.load_state_dict(loaded, strict=False)
    warnings.warn(
        f"{path}: loaded {len(loaded)} of this network's {len(own)} tensors from a torchvision "
        f"ResNet; initial values kept in the {_few(kept, most=6) or 'none'}",
        UserWarning,
        stacklevel=4,
    )


def _few(phrases: list[str], most: int = 3) -> str:
    """The first ``most`` phrases, then how many more."""
    more = f"; and {len(phrases) - most} more" if len(phrases) > most else ""
    return "; ".join(phrases[:most]) + more


def _mismatch(want: dict[str, Any], got: dict[str, Any]) -> str:
    """How a state dict differs from a model's, in a few words with one example each."""
    parts = []
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    other = [k for k in want if k in got and shape_text(want[k]) != shape_text(got[k])]
    if missing:
        parts.append(f"{len(missing)} tensors missing, e.g. {missing[0]}")
    if extra:
        parts.append(f"{len(extra)} not in this model, e.g. {extra[0]}")
    if other:
        k = other[0]
        parts.append(
            f"{len(other)} of other shapes, e.g. {k}: {shape_text(got[k])} in the file, "
            f"{shape_text(want[k])} here"
        )
    return "; ".join(parts) or "another layout"
