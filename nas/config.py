"""The architecture as typed, frozen data.

An :class:`ArchConfig` describes one network completely: presets, search-space points and
exported architectures are all instances of it, and :func:`nas.build_model` is the only thing
that turns one into an ``nn.Module``. ``to_dict``/``from_dict`` give a JSON round trip that
rebuilds the identical model.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from nas.errors import ConfigError, did_you_mean, unknown_word
from nas.registry import Registry

#: Where attention goes: inside every residual block before the skip addition (CBAM paper,
#: seed 001), after every block, after every stage ("between feature extractors", seed 003),
#: or only after the last stage (seed 004).
PLACEMENTS = ("in_block", "after_block", "after_stage", "after_last_stage")
#: How the attention output A(F) joins the features F: F' = A(F); F' = F + A(F);
#: F' = F + g*A(F) with a learned scalar g that starts at 0 (seed 003).
JOINS = ("multiply", "residual", "weighted")
BLOCKS = ("basic", "bottleneck")
#: ``conv``: 1x1 conv + BN projection when the shape changes (He et al. option B);
#: ``pad``: strided identity with zero-padded channels, parameter-free (option A).
SHORTCUTS = ("conv", "pad")
MASK_LEARNING = ("arl", "nal")
#: Output channels of a bottleneck block are ``expansion`` times its inner width.
BOTTLENECK_EXPANSION = 4

#: The most channels a layer may have (stem, stage widths, input channels): far above any
#: image classifier, and far below what overflows the count of a tensor's elements.
MAX_CHANNELS = 65_536

#: The format an exported architecture file names (``nas export``); files of another
#: format (a newer nas's) are refused rather than misread.
ARCH_FILE_FORMAT = "nas-arch/1"

#: The largest image side (pixels) an architecture is built for: counting one forward pass
#: at 4096 already takes gigabytes.
MAX_INPUT_SIZE = 4_096

#: The most blocks a stage may have.
MAX_BLOCKS = 1_024

#: The most classes a classifier may have: above ImageNet-21k's 21,841, far below a
#: classifier layer that no memory holds.
MAX_CLASSES = 1_000_000
#: The attention types and the knobs (:class:`AttentionConfig` fields) each one takes. The
#: config layer declares them; every module of :mod:`nas.models.attention` registers under
#: one of these names with exactly these keyword-only arguments, which the registry checks
#: when it registers, so configs are validated without importing the models.
ATTENTION_KNOBS: dict[str, tuple[str, ...]] = {
    "none": (),
    "se": ("reduction", "min_hidden"),
    "channel": ("reduction", "min_hidden"),
    "spatial": ("kernel_size",),
    "cbam": ("reduction", "min_hidden", "kernel_size"),
    "hierarchical": ("reduction", "min_hidden"),
    "residual_attn": ("mask_depth", "mask_learning"),
    "self_attn": ("reduction", "min_hidden", "scale"),
    "mhsa": ("heads",),
}


#: Every knob some attention module takes.
ATTENTION_KNOB_NAMES = frozenset(k for knobs in ATTENTION_KNOBS.values() for k in knobs)


def attention_knobs(name: str) -> tuple[str, ...]:
    """The :class:`AttentionConfig` knobs that attention type ``name`` takes.

    Raises:
        ConfigError: for an unknown attention type, listing the valid ones.
    """
    try:
        return ATTENTION_KNOBS[name]
    except KeyError:
        raise ConfigError(unknown_word("attention type", name, ATTENTION_KNOBS)) from None


@dataclass(frozen=True)
class AttentionConfig:
    """Which attention module, where it goes, how it joins, and its knobs.

    Only the knobs the chosen module takes are used (see :data:`ATTENTION_KNOBS`);
    the others keep their defaults so that equal architectures compare equal (a file that
    gives one a value of its own is refused: :meth:`ArchConfig.from_dict`).

    Attributes:
        type: registry name (``none``, ``se``, ``channel``, ``spatial``, ``cbam``,
            ``self_attn``, ``mhsa``, ``residual_attn``, ``hierarchical``).
        placement: one of :data:`PLACEMENTS`.
        join: one of :data:`JOINS`.
        reduction: r, the channel reduction of the MLPs and projections (C/r hidden units).
        min_hidden: floor on the hidden units (4 in seed 001).
        kernel_size: k of the spatial attention's k x k conv (3, 5 or 7).
        heads: h, heads of multi-head self-attention.
        scale: whether self-attention scales scores by 1/sqrt(d) (seed 003 leaves it out).
        mask_depth: down-sampling steps of the residual-attention soft-mask branch, or one
            per stage (seed 002's ImageNet networks pool 3/2/1 times, down to the size of
            their last stage; a space samples one for every stage).
        mask_learning: ``arl`` ((1+M)*T, attention residual learning) or ``nal`` (M*T).
        repeats: for ``after_stage`` only, how many modules follow each stage (seed 002's
            1/2/3); empty means one after every stage.
    """

    type: str = "none"
    placement: str = "in_block"
    join: str = "multiply"
    reduction: int = 16
    min_hidden: int = 1
    kernel_size: int = 7
    heads: int = 8
    scale: bool = True
    mask_depth: int | tuple[int, ...] = 1
    mask_learning: str = "arl"
    repeats: tuple[int, ...] = ()

    def at_stage(self, index: int) -> AttentionConfig:
        """The modules of stage ``index`` (0-based): their own mask depth where it is given
        per stage."""
        if isinstance(self.mask_depth, int):
            return self
        return dataclasses.replace(self, mask_depth=self.mask_depth[index])


@dataclass(frozen=True)
class StageConfig:
    """One stage of residual blocks.

    Attributes:
        width: output channels of every block in the stage.
        blocks: number of residual blocks.
        stride: stride of the first block (2 halves the resolution, 1 keeps it).
    """

    width: int
    blocks: int
    stride: int = 1


@dataclass(frozen=True)
class ArchConfig:
    """A complete ResNet-style architecture with optional attention.

    Attributes:
        stages: 3 or 4 stages (any positive number builds).
        stem_width: channels of the 3x3 stem conv.
        block: ``basic`` (two 3x3 convs) or ``bottleneck`` (1x1, 3x3, 1x1; inner width is
            width / 4).
        shortcut: see :data:`SHORTCUTS`.
        extra_conv: kernel size of an extra conv + BN + ReLU at the last width before pooling;
            0 for none.
        dropout: dropout probability before the classifier.
        attention: see :class:`AttentionConfig`.
        in_channels: channels of the input images.
        input_size: side of the (square) input images.
        num_classes: outputs of the classifier.
    """

    stages: tuple[StageConfig, ...]
    stem_width: int = 16
    block: str = "basic"
    shortcut: str = "conv"
    extra_conv: int = 0
    dropout: float = 0.0
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    in_channels: int = 3
    input_size: int = 32
    num_classes: int = 10

    def __post_init__(self) -> None:
        _coerce(self)
        validate(self)
        attention = canonical_attention(self.attention)
        if not isinstance(attention.mask_depth, int):  # per stage, as the modules take it
            slots = slots_of(attention, len(self.stages))
            used = [d for d, s in zip(attention.mask_depth, slots, strict=True) if s.any]
            fill = used[-1] if used else 1  # a stage without modules: the last depth on
            depths = [
                d if s.any else fill for d, s in zip(attention.mask_depth, slots, strict=True)
            ]
            one = len(set(depths)) == 1  # the same everywhere: one depth
            depth = depths[0] if one else tuple(depths)
            attention = dataclasses.replace(attention, mask_depth=depth)
        object.__setattr__(self, "attention", attention)

    # ----------------------------------------------------------------- JSON round trip
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` turns back into an equal config."""
        data = dataclasses.asdict(self)
        data["stages"] = [dict(s) for s in data["stages"]]
        data["attention"]["repeats"] = list(self.attention.repeats)
        if not isinstance(self.attention.mask_depth, int):
            data["attention"]["mask_depth"] = list(self.attention.mask_depth)
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchConfig:
        """Build a config from a dict; missing keys take their defaults.

        Accepts an exported architecture file's dict too (its ``arch`` entry is used).

        Raises:
            ConfigError: for unknown keys, wrong types or values that cannot be built.
        """
        if isinstance(data, str | Path):
            raise ConfigError(
                f"an architecture must be a JSON object, not a {type(data).__name__}: read a "
                "file with ArchConfig.from_file(path)"
            )
        if not isinstance(data, Mapping):
            raise ConfigError(f"an architecture must be a JSON object, not {type(data).__name__}")
        if "arch" in data and "stages" not in data:
            fmt = data.get("format", ARCH_FILE_FORMAT)
            if fmt != ARCH_FILE_FORMAT:
                raise ConfigError(
                    f"this architecture file has format {fmt!r}, which this version of nas "
                    f"cannot read (it reads {ARCH_FILE_FORMAT!r}); export it again with this "
                    "version or upgrade nas"
                )
            data = data["arch"]
            if not isinstance(data, Mapping):
                raise ConfigError("the 'arch' entry of an architecture file must be an object")
        _check_keys(data, cls, "architecture")
        if "stages" not in data:
            raise ConfigError("an architecture needs 'stages', a list of {width, blocks, stride}")
        raw_stages = data["stages"]
        if not isinstance(raw_stages, list | tuple) or not raw_stages:
            raise ConfigError("'stages' must be a non-empty list of {width, blocks, stride}")
        stages = []
        for i, raw in enumerate(raw_stages, start=1):
            if not isinstance(raw, Mapping):
                raise ConfigError(f"stage {i} must be an object with width, blocks and stride")
            _check_keys(raw, StageConfig, f"stage {i}")
            missing = [k for k in ("width", "blocks") if k not in raw]
            if missing:
                raise ConfigError(
                    f"stage {i} has no {' or '.join(missing)} (each stage needs width and "
                    "blocks; stride is 1 when left out)"
                )
            stages.append(StageConfig(**{k: _typed(StageConfig, k, v) for k, v in raw.items()}))
        raw_attn = data.get("attention", {})
        if not isinstance(raw_attn, Mapping):
            raise ConfigError("'attention' must be an object")
        _check_keys(raw_attn, AttentionConfig, "attention")
        attention = AttentionConfig(
            **{k: _typed(AttentionConfig, k, v) for k, v in raw_attn.items()}
        )
        _check_unused_knobs(attention)  # written in a file for this type, and dropped
        top = {k: _typed(cls, k, v) for k, v in data.items() if k not in ("stages", "attention")}
        return cls(stages=tuple(stages), attention=attention, **top)

    @classmethod
    def from_json(cls, text: str) -> ArchConfig:
        """Parse :meth:`to_json` output (or an exported architecture file)."""
        try:
            data = json.loads(text, object_pairs_hook=_no_repeated_keys)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | Path) -> ArchConfig:
        """Read a config or exported architecture from a ``.json`` or ``.yaml`` file."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read architecture file {path}: {exc.strerror}") from None
        if not text.strip():
            raise ConfigError(f"architecture file {path} is empty (nas export writes one)")
        if path.suffix.lower() not in (".yaml", ".yml"):
            try:
                data = json.loads(text, object_pairs_hook=_no_repeated_keys)
            except json.JSONDecodeError as exc:
                if text.lstrip().startswith(("{", "[")):  # meant as JSON: say where it breaks
                    raise ConfigError(
                        f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, column "
                        f"{exc.colno})"
                    ) from None
                # else YAML under another name (nas export --format yaml --out x.json)
            except ConfigError as exc:  # a key given twice
                raise ConfigError(f"{path}: {exc}") from None
            else:
                return cls._from_file_data(path, data)
        import yaml

        try:
            data = yaml.load(text, Loader=_yaml_loader())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {_yaml_problem(exc)}") from None
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return cls._from_file_data(path, data)

    @classmethod
    def _from_file_data(cls, path: Path, data: Any) -> ArchConfig:
        """:meth:`from_dict` of what the file ``path`` holds; a refusal names the file."""
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def replace(self, **changes: Any) -> ArchConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def widths(self) -> tuple[int, ...]:
        """Output channels of each stage."""
        return tuple(s.width for s in self.stages)

    def summary(self) -> str:
        """A one-line human description, e.g. ``basic 16/32/64 x3 | cbam after_stage``."""
        blocks = "/".join(str(s.blocks) for s in self.stages)
        widths = "/".join(str(s.width) for s in self.stages)
        attn = self.attention
        tail = (
            "no attention" if attn.type == "none" else f"{attn.type} {attn.placement} {attn.join}"
        )
        if attn.type != "none" and any(r != 1 for r in attn.repeats):  # modules per stage
            tail += " x" + "/".join(str(r) for r in attn.repeats)
        return f"{self.block} {widths} x{blocks} | {tail}"


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (``json`` keeps the last one
    without a word, so ``"stem_width": 16, ..., "stem_width": 32`` built 32)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ConfigError(f"key {key!r} is given twice; give it once")
        seen[key] = value
    return seen


def _yaml_loader() -> type:
    """PyYAML's safe loader, refusing a key given twice in a mapping (it keeps the last)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
            twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
            if twice is not None:
                line = node.start_mark.line + 1
                raise ConfigError(f"key {twice!r} is given twice (mapping at line {line})")
            return dict(super().construct_mapping(node, deep=deep))

    return Loader


def _yaml_problem(exc: Exception) -> str:
    """A YAML parser error in one line: what is wrong and where (PyYAML's own message spans
    several lines and quotes the text)."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def canonical_attention(attn: AttentionConfig) -> AttentionConfig:
    """``attn`` with every setting its module does not use reset to the default.

    So two configs that build the same network compare (and hash, and export) equal: knobs
    the module does not take, placement and join of ``none``, and repeats of one per stage;
    no module after any stage (repeats of zero) is ``none``, the network it builds.
    """
    if attn.type == "none" or (attn.repeats and not any(attn.repeats)):
        return AttentionConfig()
    used = {"type", "placement", "join", *attention_knobs(attn.type)}
    defaults = AttentionConfig()
    changes: dict[str, Any] = {
        f.name: getattr(defaults, f.name)
        for f in fields(AttentionConfig)
        if f.name not in used and f.name != "repeats"
    }
    if all(r == 1 for r in attn.repeats):
        changes["repeats"] = ()
    canonical = dataclasses.replace(attn, **changes)
    return attn if canonical == attn else canonical


# --------------------------------------------------------------------------- validation
_INT_FIELDS = {
    "width",
    "blocks",
    "stride",
    "stem_width",
    "extra_conv",
    "in_channels",
    "input_size",
    "num_classes",
    "reduction",
    "min_hidden",
    "kernel_size",
    "heads",
}


def _typed(cls: type, key: str, value: Any) -> Any:
    """Coerce a JSON value to the field's type, refusing lossy or wrong ones."""
    if key in _INT_FIELDS or (key == "mask_depth" and not isinstance(value, list | tuple)):
        # numpy's integers too (a value from np.arange); nor nan, nor inf (1e400 in JSON)
        whole = isinstance(value, Integral) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:
            per_stage = " (or a list, one per stage)" if key == "mask_depth" else ""
            raise ConfigError(f"{key} must be an integer{per_stage}, got {value!r}")
        return int(value)
    if key == "dropout":
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ConfigError(f"dropout must be a number, got {value!r}")
        return float(value)
    if key == "scale":
        if not isinstance(value, bool):
            raise ConfigError(f"scale must be true or false, got {value!r}")
        return value
    if key in ("repeats", "mask_depth"):
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, Integral) and not isinstance(v, bool) for v in value
        ):
            one = " (or one integer)" if key == "mask_depth" else ""
            raise ConfigError(f"{key} must be a list of integers{one}, got {value!r}")
        return tuple(int(v) for v in value)
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


def _check_keys(data: Mapping[str, Any], cls: type, what: str) -> None:
    valid = sorted(f.name for f in fields(cls))
    unknown = sorted(set(data) - set(valid))
    if len(unknown) == 1:  # the closest valid key named, as for a mistyped flag
        close = did_you_mean(str(unknown[0]), valid)
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {what}{close or ';'} valid: {', '.join(valid)}"
        )
    if unknown:
        raise ConfigError(
            f"unknown keys {', '.join(map(repr, unknown))} in {what}; valid: {', '.join(valid)}"
        )


def _coerce(cfg: ArchConfig) -> None:
    """Check the types of a config built in Python as :meth:`ArchConfig.from_dict` checks a
    file's (``stem_width="16"`` is refused in one sentence, not by a comparison deep inside),
    with lists taken as tuples, so that equal configs hash equal.

    Raises:
        ConfigError: naming the first field of the wrong type.
    """
    if not isinstance(cfg.stages, list | tuple):
        raise ConfigError(f"stages must be a list of StageConfig, not {type(cfg.stages).__name__}")
    stages = tuple(
        _typed_fields(stage, StageConfig, f"stage {i}") for i, stage in enumerate(cfg.stages, 1)
    )
    object.__setattr__(cfg, "stages", stages)
    object.__setattr__(cfg, "attention", _typed_fields(cfg.attention, AttentionConfig, "attention"))
    for f in fields(ArchConfig):
        if f.name not in ("stages", "attention"):
            object.__setattr__(cfg, f.name, _typed(ArchConfig, f.name, getattr(cfg, f.name)))


def _typed_fields(value: Any, cls: type[Any], what: str) -> Any:
    """``value``, an instance of ``cls`` (refused otherwise: a dict belongs to
    :meth:`ArchConfig.from_dict`), with every field of the type a file would give it."""
    if not isinstance(value, cls):
        raise ConfigError(
            f"{what} must be {cls.__name__}(...), not a {type(value).__name__} "
            "(ArchConfig.from_dict reads an architecture written as dicts)"
        )
    changes = {f.name: _typed(cls, f.name, getattr(value, f.name)) for f in fields(cls)}
    same = all(changes[k] is getattr(value, k) for k in changes)
    return value if same else dataclasses.replace(value, **changes)


def _one_of(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ConfigError(unknown_word(what, value, choices))


def validate(cfg: ArchConfig) -> None:  # noqa: C901 (one flat check per field, each with its own message)
    """Check that ``cfg`` describes a network that can be built.

    Raises:
        ConfigError: naming the first problem found.
    """
    if not cfg.stages:
        raise ConfigError("an architecture needs at least one stage")
    _one_of(cfg.block, BLOCKS, "block type")
    _one_of(cfg.shortcut, SHORTCUTS, "shortcut")
    for name in ("stem_width", "in_channels", "input_size", "num_classes"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(cfg, name)}")
    if cfg.input_size > MAX_INPUT_SIZE:
        raise ConfigError(
            f"input_size must be at most {MAX_INPUT_SIZE:,} pixels, got {cfg.input_size:,}"
        )
    if cfg.num_classes > MAX_CLASSES:
        raise ConfigError(f"num_classes must be at most {MAX_CLASSES:,}, got {cfg.num_classes:,}")
    for name in ("stem_width", "in_channels"):
        if getattr(cfg, name) > MAX_CHANNELS:
            raise ConfigError(
                f"{name} must be at most {MAX_CHANNELS:,} channels, got {getattr(cfg, name):,}"
            )
    if cfg.extra_conv < 0 or (cfg.extra_conv and cfg.extra_conv % 2 == 0):
        raise ConfigError(
            f"extra_conv must be 0 (none) or an odd kernel size, got {cfg.extra_conv}"
        )
    if not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {cfg.dropout}")
    min_width = BOTTLENECK_EXPANSION if cfg.block == "bottleneck" else 1
    prev = cfg.stem_width
    for i, stage in enumerate(cfg.stages, start=1):
        if stage.width < min_width:
            raise ConfigError(
                f"stage {i} width {stage.width} cannot be built: {cfg.block} blocks need at "
                f"least {min_width} channels"
            )
        if stage.width > MAX_CHANNELS:
            raise ConfigError(
                f"stage {i} width must be at most {MAX_CHANNELS:,} channels, got {stage.width:,}"
            )
        if stage.blocks < 1:
            raise ConfigError(f"stage {i} needs at least one block, got {stage.blocks}")
        if stage.blocks > MAX_BLOCKS:
            raise ConfigError(
                f"stage {i} may have at most {MAX_BLOCKS:,} blocks, got {stage.blocks:,}"
            )
        if stage.stride not in (1, 2):
            raise ConfigError(f"stage {i} stride must be 1 or 2, got {stage.stride}")
        if cfg.shortcut == "pad" and stage.width < prev:
            raise ConfigError(
                f"stage {i} narrows {prev} -> {stage.width} channels, which a zero-padding "
                "('pad') shortcut cannot do; use shortcut 'conv'"
            )
        prev = stage.width
    attn = cfg.attention
    attention_knobs(attn.type)  # a known type
    _one_of(attn.placement, PLACEMENTS, "placement")
    _one_of(attn.join, JOINS, "join")
    _one_of(attn.mask_learning, MASK_LEARNING, "mask learning")
    for name in ("reduction", "min_hidden", "heads"):
        if getattr(attn, name) < 1:
            raise ConfigError(f"attention {name} must be at least 1, got {getattr(attn, name)}")
        if getattr(attn, name) > MAX_CHANNELS:  # a count of channels, or channels per unit
            raise ConfigError(
                f"attention {name} must be at most {MAX_CHANNELS:,}, got {getattr(attn, name):,}"
            )
    depths = (attn.mask_depth,) if isinstance(attn.mask_depth, int) else attn.mask_depth
    takes = "mask_depth" in attention_knobs(attn.type)  # another type ignores it
    if takes and not isinstance(attn.mask_depth, int) and len(depths) != len(cfg.stages):
        raise ConfigError(
            f"attention mask_depth needs one depth per stage ({len(cfg.stages)}), or one for "
            f"all, got {list(depths)}"
        )
    if any(d < 1 for d in depths):
        raise ConfigError(f"attention mask_depth must be at least 1, got {attn.mask_depth}")
    if attn.kernel_size < 1 or attn.kernel_size % 2 == 0:
        raise ConfigError(f"attention kernel_size must be odd, got {attn.kernel_size}")
    widest = 2 * cfg.input_size - 1  # wider, a kernel reaches past the maps from every pixel
    for name, size in (("attention kernel_size", attn.kernel_size), ("extra_conv", cfg.extra_conv)):
        used = name == "extra_conv" or "kernel_size" in attention_knobs(attn.type)
        if used and size > widest:  # the widest maps are the input's own
            raise ConfigError(
                f"{name} {size} reaches past the {cfg.input_size}x{cfg.input_size} input "
                f"images from every pixel (at most {widest})"
            )
    if attn.repeats:
        if attn.placement != "after_stage":
            raise ConfigError("attention repeats only apply to placement 'after_stage'")
        if any(r > MAX_BLOCKS for r in attn.repeats):
            raise ConfigError(
                f"attention repeats may be at most {MAX_BLOCKS:,} modules per stage, got "
                f"{max(attn.repeats):,}"
            )
        if len(attn.repeats) != len(cfg.stages) or any(r < 0 for r in attn.repeats):
            raise ConfigError(
                f"attention repeats needs one count >= 0 per stage ({len(cfg.stages)}), "
                f"got {list(attn.repeats)}"
            )
    deepest = (cfg.input_size - 1).bit_length()  # pools before the input's maps reach 1x1
    if takes and not isinstance(attn.mask_depth, int):  # the stages that hold modules
        holds = [s.any for s in slots_of(attn, len(cfg.stages))]
        depths = tuple(d for d, held in zip(depths, holds, strict=True) if held) or (1,)
    if takes and max(depths) > deepest:
        raise ConfigError(
            f"attention mask_depth {max(depths)} pools past 1x1: the {cfg.input_size}x"
            f"{cfg.input_size} input images reach 1x1 after {deepest} max-pools (at most "
            f"{deepest}, fewer on a stage whose maps are smaller)"
        )
    if attn.type == "mhsa":
        for i, (stage, slots) in enumerate(zip(cfg.stages, stage_slots(cfg), strict=True), start=1):
            if slots.any and stage.width < attn.heads:
                raise ConfigError(
                    f"stage {i} width {stage.width} cannot hold {attn.heads} attention heads"
                )


def _check_unused_knobs(attn: AttentionConfig) -> None:
    """Refuse a knob that ``attn``'s module does not take, given a value of its own in a file
    (it would be dropped without a word: ``heads`` on ``se``). In Python such knobs are reset
    (see :func:`canonical_attention`), so that one set of knobs serves a loop over types;
    knobs of ``none`` are let be, since turning attention off leaves its module's behind.

    Raises:
        ConfigError: naming the knob and the knobs the module takes.
    """
    if attn.type == "none":
        return
    takes = attention_knobs(attn.type)
    defaults = AttentionConfig()
    given = [
        f.name
        for f in fields(AttentionConfig)
        if f.name in ATTENTION_KNOB_NAMES
        and f.name not in takes
        and getattr(attn, f.name) != getattr(defaults, f.name)
    ]
    if given:
        raise ConfigError(
            f"attention type {attn.type!r} takes no {' or '.join(given)} (it takes "
            f"{', '.join(takes) or 'no knobs'}); remove {'them' if len(given) > 1 else 'it'}"
        )


# --------------------------------------------------------------------------- placement
@dataclass(frozen=True)
class Slots:
    """Where attention modules go within one stage.

    Attributes:
        in_block: inside every block, before the skip addition.
        after_block: one module after every block.
        after_stage: number of modules after the stage's last block.
    """

    in_block: bool = False
    after_block: bool = False
    after_stage: int = 0

    @property
    def any(self) -> bool:
        """Whether this stage holds any attention module."""
        return self.in_block or self.after_block or self.after_stage > 0


PlacementRule = Callable[[AttentionConfig, int, int], Slots]
#: Placement name -> rule(attention, stage index, number of stages) -> :class:`Slots`.
PLACEMENT_RULES: Registry[PlacementRule] = Registry("placement")
PLACEMENT_RULES.add("in_block", lambda a, i, n: Slots(in_block=True))
PLACEMENT_RULES.add("after_block", lambda a, i, n: Slots(after_block=True))
PLACEMENT_RULES.add(
    "after_stage", lambda a, i, n: Slots(after_stage=a.repeats[i] if a.repeats else 1)
)
PLACEMENT_RULES.add("after_last_stage", lambda a, i, n: Slots(after_stage=int(i == n - 1)))


def stage_slots(cfg: ArchConfig) -> list[Slots]:
    """The attention slots of every stage of ``cfg`` (all empty for ``none``)."""
    return slots_of(cfg.attention, len(cfg.stages))


def slots_of(attention: AttentionConfig, n: int) -> list[Slots]:
    """The slots ``attention`` takes in each of ``n`` stages (all empty for ``none``)."""
    if attention.type == "none":
        return [Slots() for _ in range(n)]
    rule = PLACEMENT_RULES[attention.placement]
    return [rule(attention, i, n) for i in range(n)]
