"""Weights of torchvision's ResNets on a nas network (seed 004 starts from ImageNet ResNet-18).

A torchvision ResNet names its tensors ``conv1``, ``bn1``, ``layer{L}.{j}.conv{k}`` /
``bn{k}`` / ``downsample``, ``fc``; a nas network of the same stages names them ``stem``,
``stages.{i}.{n}.body`` / ``shortcut`` and ``head.fc``, with attention modules between
blocks. :func:`from_torchvision` maps one onto the other unit by unit: a unit (the stem, a
block, the head) takes the file's tensors when all of them fit its shapes, and keeps its
initial values otherwise (the CIFAR 3x3 stem against ImageNet's 7x7, 10 classes against
1,000); attention modules, which a torchvision ResNet has none of, keep theirs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from nas.config import ArchConfig
from nas.models.plan import BlockSpec, plan

#: Keys only a torchvision ResNet state dict has.
MARKS = ("conv1.weight", "layer1.0.conv1.weight")

_LAYER = re.compile(r"layer(\d+)\.(\d+)\.(?:(conv|bn)(\d+)|downsample\.(\d+))\.(.+)")


def is_torchvision_resnet(state: dict[str, Any]) -> bool:
    """Whether ``state`` is the state dict of a torchvision ResNet."""
    return all(key in state for key in MARKS)


def _block_names(cfg: ArchConfig) -> dict[tuple[int, int], str]:
    """(stage, block within it) -> the block's module path in the nas network."""
    names: dict[tuple[int, int], str] = {}
    seen: defaultdict[int, int] = defaultdict(int)
    for unit in plan(cfg):
        if isinstance(unit.spec, BlockSpec) and unit.stage is not None:
            names[(unit.stage, seen[unit.stage])] = unit.name
            seen[unit.stage] += 1
    return names


def _nas_key(key: str, blocks: dict[tuple[int, int], str]) -> tuple[str, str] | None:
    """(unit, nas key) of a torchvision key; None for a key no unit of this network has."""
    if key.startswith("conv1."):
        return "stem", "stem.0.0." + key[len("conv1.") :]
    if key.startswith("bn1."):
        return "stem", "stem.0.1." + key[len("bn1.") :]
    if key.startswith("fc."):
        return "head", "head." + key
    match = _LAYER.fullmatch(key)
    if match is None:
        return None
    layer, index, kind, k, down, rest = match.groups()
    unit = blocks.get((int(layer) - 1, int(index)))
    if unit is None:
        return None
    if down is not None:
        return unit, f"{unit}.shortcut.{down}.{rest}"
    return unit, f"{unit}.body.{2 * (int(k) - 1)}.{int(kind == 'bn')}.{rest}"


def from_torchvision(
    state: dict[str, Any], cfg: ArchConfig, model_state: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The tensors of torchvision ResNet ``state`` that fit the network of ``cfg`` (whose
    state dict is ``model_state``), under nas's names, and what keeps its initial values,
    one phrase per kind (``stem (conv1.weight: 64x3x7x7 in the file, 64x3x3x3 here)``)."""
    blocks = _block_names(cfg)
    by_unit: dict[str, dict[str, Any]] = defaultdict(dict)
    unplaced = 0
    for key, tensor in state.items():
        placed = _nas_key(key, blocks)
        if placed is None or placed[1] not in model_state:
            unplaced += 1
            continue
        by_unit[placed[0]][placed[1]] = (key, tensor)
    loaded: dict[str, Any] = {}
    kept: list[str] = []
    for unit, tensors in by_unit.items():
        wrong = [
            (key, nas_key, tensor)
            for nas_key, (key, tensor) in tensors.items()
            if tuple(tensor.shape) != tuple(model_state[nas_key].shape)
        ]
        if wrong:
            key, nas_key, tensor = wrong[0]
            here = shape_text(model_state[nas_key])
            kept.append(f"{unit} ({key}: {shape_text(tensor)} in the file, {here} here)")
        else:
            loaded.update({nas_key: tensor for nas_key, (_, tensor) in tensors.items()})
    beyond = [u for u in blocks.values() if u not in by_unit]
    if beyond:
        kept.append(f"{len(beyond)} block(s) the file has no layer for (e.g. {beyond[0]})")
    missing = [k for k in model_state if k not in loaded]
    others = {k.rsplit(".attn", 1)[0] for k in missing if ".attn." in k}
    if others:
        kept.append(f"{len(others)} attention module(s) (a torchvision ResNet has none)")
    if any(k.startswith("extra.") for k in missing):
        kept.append("extra conv (a torchvision ResNet has none)")
    if unplaced:
        kept.append(f"{unplaced} tensors of the file have no place in this network")
    return loaded, kept


def shape_text(tensor: Any) -> str:
    """``64x3x7x7``; ``?`` for a value without a shape."""
    return "x".join(map(str, getattr(tensor, "shape", ()))) or "?"
