"""Search spaces: TOML files that map an Optuna trial to an :class:`~nas.config.ArchConfig`.

A space file has four tables (see ``search_spaces/attention_resnet.toml``)::

    [space]       name, description
    [backbone]    stem_width, block, shortcut, extra_conv, dropout
    [stages]      count, blocks, stride, and either width (channels) or growth (a stage's
                  width is round(previous width * growth), the stem's for stage 1);
                  [stages.N] overrides any of them for stage N (a width there replaces an
                  inherited growth, and the other way round; where every stage gives its
                  own, [stages] needs neither).
    [attention]   type, placement, join and the modules' knobs (reduction, min_hidden,
                  kernel_size, heads, scale, mask_depth, mask_learning), repeats

Every value is a dimension (:mod:`nas.space.dims`). :meth:`SearchSpace.suggest` samples only
what applies: stage dimensions for the sampled number of stages, the knobs of the sampled
attention type, per-stage repeats only for the ``after_stage`` placement.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import optuna

from nas.config import (
    ATTENTION_KNOB_NAMES,
    ATTENTION_KNOBS,
    BLOCKS,
    BOTTLENECK_EXPANSION,
    JOINS,
    MASK_LEARNING,
    MAX_BLOCKS,
    MAX_CHANNELS,
    PLACEMENTS,
    SHORTCUTS,
    ArchConfig,
    AttentionConfig,
    StageConfig,
    attention_knobs,
)
from nas.errors import SpaceError, closest, unknown_word
from nas.files import read_toml
from nas.space.dims import Choice, Dim, Fixed, IntRange, parse_dim

Check = Callable[[Any], str | None]

#: Where the space files shipped with the project live.
BUILTIN_SPACES = Path(__file__).resolve().parents[2] / "search_spaces"
DEFAULT_SPACE = "attention_resnet"


def _integer(minimum: int, maximum: int | None = None) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int):
            return f"must be an integer, got {v!r}"
        if v < minimum:
            return f"must be at least {minimum}, got {v}"
        if maximum is not None and v > maximum:
            return f"must be at most {maximum:,}, got {v:,}"
        return None

    return check


def _one_of(valid: tuple[str, ...], what: str) -> Check:
    def check(v: Any) -> str | None:
        if v in valid:
            return None
        return unknown_word(what, str(v), valid)

    return check


def _odd_kernel(allow_zero: bool) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            return f"must be a non-negative integer, got {v!r}"
        if v == 0 and allow_zero:
            return None
        return (
            None
            if v % 2 == 1
            else f"must be an odd kernel size{' or 0' if allow_zero else ''}, got {v}"
        )

    return check


def _fraction(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"must be a number, got {v!r}"
    return None if 0 <= v < 1 else f"must be in [0, 1), got {v}"


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def _growth(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"must be a number, got {v!r}"
    return None if v >= 1 else f"must be at least 1 (widths never shrink), got {v}"


def _stride(v: Any) -> str | None:
    return None if v in (1, 2) and not isinstance(v, bool) else f"must be 1 or 2, got {v!r}"


SCHEMA: dict[str, dict[str, Check]] = {
    "backbone": {
        "stem_width": _integer(1, MAX_CHANNELS),
        "block": _one_of(BLOCKS, "block type"),
        "shortcut": _one_of(SHORTCUTS, "shortcut"),
        "extra_conv": _odd_kernel(allow_zero=True),
        "dropout": _fraction,
    },
    "stages": {
        "count": _integer(1),
        "width": _integer(1, MAX_CHANNELS),
        "growth": _growth,
        "blocks": _integer(1, MAX_BLOCKS),
        "stride": _stride,
    },
    "attention": {
        "type": _one_of(tuple(ATTENTION_KNOBS), "attention type"),
        "placement": _one_of(PLACEMENTS, "placement"),
        "join": _one_of(JOINS, "join"),
        "reduction": _integer(1),
        "min_hidden": _integer(1),
        "kernel_size": _odd_kernel(allow_zero=False),
        "heads": _integer(1),
        "scale": _boolean,
        "mask_depth": _integer(1),
        "mask_learning": _one_of(MASK_LEARNING, "mask learning"),
        "repeats": _integer(0),
    },
}
_ARCH_DEFAULTS = {f.name: f.default for f in fields(ArchConfig)}
_ATTN_DEFAULTS = {f.name: f.default for f in fields(AttentionConfig)}
DEFAULTS: dict[str, dict[str, Any]] = {
    "backbone": {k: _ARCH_DEFAULTS[k] for k in SCHEMA["backbone"]},
    "stages": {"count": 3},
    "attention": {
        **{k: _ATTN_DEFAULTS[k] for k in SCHEMA["attention"] if k != "repeats"},
        "repeats": 1,
    },
}


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, validated space file.

    Attributes:
        name: the space's name (``[space] name``, else the file's stem).
        description: one paragraph for humans.
        backbone: dimensions of the backbone table.
        stages: dimensions shared by all stages.
        stage_overrides: per-stage dimensions (1-based stage index -> name -> dim).
        attention: dimensions of the attention table.
        source: the file it was read from, if any.
    """

    name: str
    description: str
    backbone: dict[str, Dim]
    stages: dict[str, Dim]
    stage_overrides: dict[int, dict[str, Dim]]
    attention: dict[str, Dim]
    source: Path | None = field(default=None, compare=False)
    #: what a new study would refuse in the file, kept for a study that searched it already
    doubts: tuple[str, ...] = field(default=(), compare=False)

    # ------------------------------------------------------------------ sampling
    def stage_dims(self, index: int) -> dict[str, Dim]:
        """Dimensions of stage ``index`` (1-based): the shared ones with its overrides."""
        dims = dict(self.stages)
        dims.setdefault("stride", Fixed(1 if index == 1 else 2))
        override = self.stage_overrides.get(index, {})
        for a, b in (("width", "growth"), ("growth", "width")):
            if a in override:
                dims.pop(b, None)
        dims.update(override)
        return dims

    def width_bounds(self, index: int) -> tuple[int, int]:
        """Smallest and largest width stage ``index`` can sample."""
        stem = self.backbone["stem_width"].values()
        low, high = min(stem), max(stem)
        for i in range(1, index + 1):
            d = self.stage_dims(i)
            if "growth" in d:
                g = d["growth"].values()
                low, high = grown(low, min(g)), grown(high, max(g))
            else:
                low, high = min(d["width"].values()), max(d["width"].values())
        return low, high

    def suggest(
        self,
        trial: optuna.trial.BaseTrial,
        *,
        in_channels: int = 3,
        input_size: int = 32,
        num_classes: int = 10,
    ) -> ArchConfig:
        """Sample an architecture, recording each choice as a parameter of ``trial``.

        Raises:
            ConfigError: when the sampled point cannot be built (for example a ``pad``
                shortcut with narrowing widths); the trial's parameters are recorded anyway.
        """
        b = self.backbone
        n = self.stages["count"].suggest(trial, "n_stages")
        stages = []
        stem_width = b["stem_width"].suggest(trial, "stem_width")
        width = stem_width
        for i in range(1, n + 1):
            d = self.stage_dims(i)
            if "growth" in d:
                width = grown(width, d["growth"].suggest(trial, f"stage{i}_growth"))
            else:
                width = d["width"].suggest(trial, f"stage{i}_width")
            stages.append(
                StageConfig(
                    width=width,
                    blocks=d["blocks"].suggest(trial, f"stage{i}_blocks"),
                    stride=d["stride"].suggest(trial, f"stage{i}_stride"),
                )
            )
        attention = self._suggest_attention(trial, n)
        return ArchConfig(
            stages=tuple(stages),
            stem_width=stem_width,
            block=b["block"].suggest(trial, "block"),
            shortcut=b["shortcut"].suggest(trial, "shortcut"),
            extra_conv=b["extra_conv"].suggest(trial, "extra_conv"),
            dropout=float(b["dropout"].suggest(trial, "dropout")),
            attention=attention,
            in_channels=in_channels,
            input_size=input_size,
            num_classes=num_classes,
        )

    def _suggest_attention(self, trial: optuna.trial.BaseTrial, n_stages: int) -> AttentionConfig:
        a = self.attention
        kind = a["type"].suggest(trial, "attention")
        if kind == "none":
            return AttentionConfig()
        placement = a["placement"].suggest(trial, "placement")
        join = a["join"].suggest(trial, "join")
        knobs = {k: a[k].suggest(trial, k) for k in attention_knobs(kind)}
        repeats: tuple[int, ...] = ()
        if placement == "after_stage":
            repeats = tuple(
                a["repeats"].suggest(trial, f"stage{i}_repeats") for i in range(1, n_stages + 1)
            )
        return AttentionConfig(type=kind, placement=placement, join=join, repeats=repeats, **knobs)

    # ------------------------------------------------------------------ inverse
    def params_for(self, cfg: ArchConfig) -> dict[str, Any]:  # noqa: C901 (one branch per dimension kind of the space)
        """The Optuna parameters that make :meth:`suggest` return ``cfg`` (for enqueueing).

        Raises:
            SpaceError: naming every field of ``cfg`` that lies outside this space.
        """
        params: dict[str, Any] = {}
        problems: list[str] = []

        def put(dim: Dim, name: str, value: Any) -> None:
            if not dim.contains(value):
                problems.append(f"{name} = {value!r} is outside {dim.describe()}")
            elif dim.searched:
                params[name] = value

        put(self.stages["count"], "n_stages", len(cfg.stages))
        for i, stage in enumerate(cfg.stages, start=1):
            d = self.stage_dims(i)
            if "growth" in d:
                prev = cfg.stages[i - 2].width if i > 1 else cfg.stem_width
                growth: float = stage.width / prev
                if isinstance(d["growth"], Choice | Fixed):
                    match = [g for g in d["growth"].values() if grown(prev, g) == stage.width]
                    growth = match[0] if match else growth
                put(d["growth"], f"stage{i}_growth", growth)
            else:
                put(d["width"], f"stage{i}_width", stage.width)
            put(d["blocks"], f"stage{i}_blocks", stage.blocks)
            put(d["stride"], f"stage{i}_stride", stage.stride)
        for key in ("stem_width", "block", "shortcut", "extra_conv", "dropout"):
            put(self.backbone[key], key, getattr(cfg, key))
        attn = cfg.attention
        put(self.attention["type"], "attention", attn.type)
        if attn.type != "none":
            put(self.attention["placement"], "placement", attn.placement)
            put(self.attention["join"], "join", attn.join)
            for knob in attention_knobs(attn.type):
                put(self.attention[knob], knob, getattr(attn, knob))
            if attn.placement == "after_stage":
                repeats = attn.repeats or (1,) * len(cfg.stages)
                for i, r in enumerate(repeats, start=1):
                    put(self.attention["repeats"], f"stage{i}_repeats", r)
        if problems:
            raise SpaceError(
                f"the architecture is outside space {self.name!r}: " + "; ".join(problems)
            )
        return params

    def describe(self) -> list[tuple[str, str]]:
        """(dimension, range) rows for display."""
        rows = [(f"backbone.{k}", d.describe()) for k, d in self.backbone.items()]
        rows += [(f"stages.{k}", d.describe()) for k, d in self.stages.items()]
        for i, over in sorted(self.stage_overrides.items()):
            rows += [(f"stages.{i}.{k}", d.describe()) for k, d in over.items()]
        rows += [(f"attention.{k}", d.describe()) for k, d in self.attention.items()]
        return rows


def grown(width: int, growth: float) -> int:
    """Width of a stage that grows ``width`` by ``growth`` (rounded, at least ``width``)."""
    return max(width, round(width * growth))


# ---------------------------------------------------------------------- loading
def resolve_space_path(path: str | Path) -> Path:
    """``path`` itself, or a space shipped in ``search_spaces/`` by that name."""
    p = Path(path)
    if p.exists():
        return p
    for candidate in (BUILTIN_SPACES / p.name, BUILTIN_SPACES / f"{p.name}.toml"):
        if candidate.exists() and (p.parent == Path(".") or p.parent.name == "search_spaces"):
            return candidate
    raise SpaceError(f"space file {path} does not exist{_closest_space(p)}")


def _closest_space(p: Path) -> str:
    """``"; did you mean search_spaces/small_cifar.toml?"``: the space file beside ``p``
    (or shipped, for a bare name) whose name is closest to ``p``'s, else ``""``."""
    folders = [p.parent] if p.parent.is_dir() else []
    if p.parent == Path(".") or p.parent.name == "search_spaces":
        folders.append(BUILTIN_SPACES)
    # by the names without .toml, which every candidate shares (it made any name look close)
    names = {f.stem: p.parent / f.name for d in folders for f in sorted(d.glob("*.toml"))}
    close = closest(p.stem if p.suffix == ".toml" else p.name, names)
    return f"; did you mean {names[close]}?" if close else ""


def space_sha1(path: str | Path) -> str:
    """The content hash of a space file: what a study pins of its space."""
    import hashlib

    return hashlib.sha1(resolve_space_path(path).read_bytes()).hexdigest()


def load_space(path: str | Path, *, recorded: bool = False) -> SearchSpace:
    """Read and validate a space file (``recorded``: a study's, see :func:`parse_space`).

    Raises:
        SpaceError: listing every mistake in the file, one per line.
    """
    p = resolve_space_path(path)
    raw = read_toml(p, "space file", SpaceError)
    return parse_space(raw, name=p.stem, source=p, recorded=recorded)


def parse_space(  # noqa: C901 (one flat check per table of a space file, each with its message)
    raw: Mapping[str, Any],
    *,
    name: str = "space",
    source: Path | None = None,
    recorded: bool = False,
) -> SearchSpace:
    """Validate a space given as a dict (a parsed TOML file). ``recorded``: the space of a
    study that exists, whose file is pinned by its content: what earlier versions took
    (:func:`_dim`'s doubts, a knob no type of it takes) is then kept, in
    :attr:`SearchSpace.doubts`, rather than refused."""
    errors: list[str] = []
    doubts: list[str] = []
    where = str(source) if source else name
    _unknown(raw, ("space", *SCHEMA), "top-level table", errors)
    meta = raw.get("space", {})
    if not isinstance(meta, Mapping):
        errors.append("[space] must be a table")
        meta = {}
    _unknown(meta, ("name", "description"), "key in [space]", errors)

    def table(section: str) -> dict[str, Dim]:
        body = raw.get(section, {})
        if not isinstance(body, Mapping):
            errors.append(f"[{section}] must be a table")
            return {}
        allowed = SCHEMA[section]
        keys = [k for k in body if not (section == "stages" and str(k).isdigit())]
        _unknown({k: None for k in keys}, tuple(allowed), f"key in [{section}]", errors)
        dims: dict[str, Dim] = {k: Fixed(v) for k, v in DEFAULTS[section].items()}
        for key in keys:
            if key in allowed:
                dim = _dim(body[key], f"{section}.{key}", allowed[key], errors, doubts)
                if dim is not None:
                    dims[key] = dim
        return dims

    backbone = table("backbone")
    stages = table("stages")
    attention = table("attention")
    overrides: dict[int, dict[str, Dim]] = {}
    stage_body = raw.get("stages", {})
    if isinstance(stage_body, Mapping):
        for key, body in stage_body.items():
            if not str(key).isdigit():
                continue
            index = int(key)
            if not isinstance(body, Mapping):
                errors.append(f"stages.{key} must be a table of stage dimensions")
                continue
            keys = ("width", "growth", "blocks", "stride")
            _unknown(body, keys, f"key in [stages.{key}]", errors)
            overrides[index] = {}
            if "width" in body and "growth" in body:
                errors.append(
                    f"[stages.{key}] gives both 'width' and 'growth'; give one (either "
                    "replaces what [stages] gives)"
                )
            for k in keys:
                if k in body:
                    dim = _dim(body[k], f"stages.{key}.{k}", SCHEMA["stages"][k], errors, doubts)
                    if dim is not None:
                        overrides[index][k] = dim
    body = raw.get("stages") or {}
    if "blocks" not in body:
        errors.append("[stages] needs 'blocks'")
    sized = {i for i, over in overrides.items() if "width" in over or "growth" in over}
    counts = stages["count"].values() if "count" in stages else [3]
    unsized = sorted(set(range(1, max(counts) + 1)) - sized)  # stages without their own
    shared = ("width" in body) + ("growth" in body)
    if shared == 2 or (shared == 0 and unsized and not sized):
        errors.append("[stages] needs exactly one of 'width' (channels) or 'growth' (a factor)")
    elif shared == 0 and unsized:
        errors.append(
            f"stage {unsized[0]} has no width or growth of its own: give [stages.{unsized[0]}] "
            "one, or [stages] a shared one"
        )
    space = SearchSpace(
        name=str(meta.get("name", name)),
        description=str(meta.get("description", "")),
        backbone=backbone,
        stages=stages,
        stage_overrides=overrides,
        attention=attention,
        source=source,
    )
    if not errors:
        _check_buildable(space, errors)
        _check_knobs_taken(raw.get("attention") or {}, space, doubts)
    if recorded:  # a study searched it already: it is kept, and told
        space = dataclasses.replace(space, doubts=tuple(doubts))
    else:
        errors += doubts
    if errors:
        raise SpaceError(
            f"{where}: " + "\n".join(errors)
            if len(errors) == 1
            else f"{where} has {len(errors)} problems:\n" + "\n".join(f"  - {e}" for e in errors)
        )
    return space


def _unknown(
    body: Mapping[str, Any], allowed: tuple[str, ...], what: str, errors: list[str]
) -> None:
    for key in body:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"unknown {what} {key!r}{hint}; valid: {', '.join(allowed)}")


def _dim(raw: Any, where: str, check: Check, errors: list[str], doubts: list[str]) -> Dim | None:
    """Parse and check one dimension: a malformed one or a value its knob cannot take goes
    to ``errors``; what later versions refuse and earlier ones took (a choice listed twice, a
    range drawing a value between its ends that cannot be built) goes to ``doubts``."""
    dim = parse_dim(raw, where, errors)
    if dim is None:
        return None
    twice = dim.twice() if isinstance(dim, Choice) else None
    if twice is not None:  # drawn twice as often as the others
        doubts.append(f"{where}: {twice!r} is listed twice; list each choice once")
    bad = False
    for value in dim.values():
        problem = check(value)
        if problem:
            errors.append(f"{where}: {problem}")
            bad = True
    inside = dim.drawn()[1:-1] if isinstance(dim, IntRange) and not bad else []
    wrong = next(((v, p) for v in inside if (p := check(v))), None)
    if wrong is not None:  # the ends are fine, a value between them is not (an even kernel)
        doubts.append(
            f"{where}: the range {dim.describe()} draws {wrong[0]}, which it cannot take "
            f"({wrong[1]}); give a step that skips it, or list the values"
        )
    return None if bad else dim


def _check_knobs_taken(given: Mapping[str, Any], space: SearchSpace, errors: list[str]) -> None:
    """A knob the file gives that no attention type of the space takes would be ignored
    without a word (``heads`` in a space of ``se`` only): refused, naming the types that
    take it."""
    types = [str(t) for t in space.attention["type"].values()]
    taken = {k for t in types if t in ATTENTION_KNOBS for k in ATTENTION_KNOBS[t]}
    for knob in given:
        if knob in ATTENTION_KNOB_NAMES and knob not in taken:
            takers = [t for t, knobs in ATTENTION_KNOBS.items() if knob in knobs]
            errors.append(
                f"attention.{knob}: no attention type of this space takes it (it samples "
                f"{', '.join(types)}; {', '.join(takers)} would); remove it or add such a type"
            )


def _check_buildable(space: SearchSpace, errors: list[str]) -> None:
    """Cross-field checks: every width the space can sample must be buildable."""
    max_stages = max(space.stages["count"].values())
    for index in sorted(space.stage_overrides):
        if index < 1:
            errors.append(f"[stages.{index}]: stages are numbered from 1 ([stages.1] is the first)")
        elif index > max_stages:
            errors.append(f"[stages.{index}] is beyond the largest stage count {max_stages}")
    blocks = space.backbone["block"].values()
    types = space.attention["type"].values()
    heads = max(space.attention["heads"].values()) if "mhsa" in types else 0
    counts = space.stages["count"].values()
    only_last = set(space.attention["placement"].values()) == {"after_last_stage"}
    too_wide = False
    for i in range(1, max_stages + 1):
        low, high = space.width_bounds(i)
        if high > MAX_CHANNELS and not too_wide:  # the first such stage; later ones grow on
            too_wide = True
            errors.append(
                f"stage {i} width can reach {high:,} channels, more than the {MAX_CHANNELS:,} "
                "a layer may have; lower the widths or their growth"
            )
        if "bottleneck" in blocks and low < BOTTLENECK_EXPANSION:
            errors.append(
                f"stage {i} width can be as low as {low}, which bottleneck blocks cannot build "
                f"(they need at least {BOTTLENECK_EXPANSION} channels)"
            )
        holds = not only_last or i in counts  # a stage that can hold an mhsa module
        if heads and holds and low < heads:
            errors.append(
                f"stage {i} width can be as low as {low}, which cannot hold {heads} mhsa heads; "
                "raise the lowest width or lower attention.heads"
            )
