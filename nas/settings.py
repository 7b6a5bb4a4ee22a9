"""Settings declared once: each field of a settings dataclass carries its flag, help, kind and
parser, and everything else is derived from that one declaration.

From the fields of a frozen dataclass whose metadata hold a :class:`Setting` (made with
:func:`setting`), this module derives:

* the command line (:func:`add_flags`): one flag per field, ``default=SUPPRESS`` so that a
  flag that was not typed is absent, never confused with a default;
* the study file (:func:`read_table`, :func:`write_table`): a TOML table with the fields'
  names, values parsed by the same parsers as the flags;
* what a study records (:func:`recorded`) and the effective settings of a run with the origin
  of each value (:func:`resolve`), which also refuses an explicit conflict with a pinned
  setting in one line.

Three kinds of setting:

* **pinned** (:data:`PINNED`): changes every score or the rung schedule, so a study keeps it
  for life. Recorded when the study is created; a run that does not give it takes the
  recorded value; a run that gives another value is refused.
* **kept** (:data:`KEPT`): may change between runs (``--trials``), recorded; a run that does
  not give it takes the recorded value, a run that gives one replaces the record.
* **per run** (:data:`PER_RUN`): about this run or this machine (``--device``, ``--timeout``),
  never recorded; the default unless given.

Light: no torch, Optuna or SQLAlchemy, so ``--help`` is built from it at no cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nas.errors import NasError, did_you_mean

PINNED = "pinned"
KEPT = "kept"
PER_RUN = "per run"
KINDS = (PINNED, KEPT, PER_RUN)

#: Where an effective value came from, in the order that wins (a run's settings are given
#: either on the command line or in Python, as keyword arguments: never both).
FLAG, PYTHON, FILE = "flag", "python", "study file"
RECORDED, LEGACY, DEFAULT = "recorded", "legacy", "default"

#: The origins of a value the user gave for this run (the others are the study's or ours).
GIVEN = (FLAG, PYTHON, FILE)


def spelled(name: str, given_as: str = FLAG) -> str:
    """How messages name the setting ``name`` to a user who gives settings ``given_as``:
    ``--proxy-subset`` on the command line, ``proxy_subset`` from Python."""
    return name if given_as == PYTHON else "--" + name.replace("_", "-")


def named_in_python(message: str, cls: type[Any]) -> str:
    """``message`` with the flags of ``cls``'s settings named as Python users give them:
    ``--data-dir DIR`` -> ``data_dir=DIR``, ``--dataset imagefolder`` ->
    ``dataset='imagefolder'`` (a valid choice), a switch ``--remeasure`` ->
    ``remeasure=True``, any other ``--proxy-subset`` -> ``proxy_subset``; for what deeper
    layers (data, devices, storage) say in their command-line words."""
    import re

    settings = {d.name: d.setting for d in declared(cls)}

    def name(match: re.Match[str]) -> str:
        field, word = match.group(1).replace("-", "_"), match.group(2)
        setting = settings.get(field)
        if setting is None:
            return match.group(0)
        if setting.switch:
            named = f"{field}=True"
        elif word and word == setting.metavar:
            return f"{field}={word}"
        elif word and (word in _choices(setting) or word.split(":")[0] in _choices(setting)):
            return f"{field}={word!r}"  # 'imagefolder', or 'cuda:1' of cuda:N
        else:
            named = field
        return named + (f" {word}" if word else "")

    return re.sub(r"(?<![\w-])--([a-z][a-z0-9-]*)(?: ([\w./-]+(?::\w+)?))?", name, message)


def _choices(setting: Setting) -> Sequence[str]:
    """A setting's valid values: its choices, or the ones its metavar lists (``{auto,cpu,
    cuda}``); none when it names none."""
    choices = setting.choices() if callable(setting.choices) else setting.choices
    metavar = setting.metavar or ""
    if not choices and metavar.startswith("{") and metavar.endswith("}"):
        return metavar[1:-1].split(",")
    return choices or ()


class _Missing:
    """No legacy value: the setting was recorded from the start."""

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


@dataclass(frozen=True)
class Setting:
    """How one field of a settings dataclass appears to users.

    Attributes:
        help: the flag's help (its default is appended unless ``show_default`` is False), or
            a function returning it (called when the parser is built, so a registry that
            grows is described).
        kind: :data:`PINNED`, :data:`KEPT` or :data:`PER_RUN`.
        flag: the flag (``""``: ``--`` and the field name with dashes; None: study file only).
        metavar: the flag's metavar.
        parse: turns a flag's text or a study file's value into the field's value, raising
            :class:`~nas.errors.NasError` for a malformed one (None: taken as it is).
        choices: the valid values, a sequence or a function returning one (called when the
            parser is built, so a light registry can answer).
        group: the ``--help`` section.
        switch: a flag without a value that sets the field to True.
        extra_flags: more flags that set the field to a constant: (flag, value, help).
        to_record: the field's value as JSON (default: itself; tuples become lists).
        from_record: a recorded JSON value back to the field's type.
        fingerprint: for a pinned setting that names a file: (record key, ``module:function``
            of the value, imported when needed) whose result is what is pinned (the file's
            content, not its path).
        legacy: the value a study recorded before this setting existed had implicitly.
        show_default: whether the help shows the default.
        hidden: left out of ``--help`` (internal flags).
        fmt: how a value is shown to users (default :func:`shown`).
        parse_file: study-file values go through ``parse`` too (values with a syntax of their
            own: ``"5M"``, ``"all"``, ``"accuracy,params"``); otherwise a file's values are
            taken as TOML typed them and type-checked.
        entries: for a mapping field, the settings it holds, one per key, as a function
            returning :class:`Entry` items (called whenever settings are read, so a registry
            that grows is seen); the field itself then has no flag of its own.
        bounded_by: for a count the data may not meet: (the quantity that bounds it, a key
            of what :meth:`Resolved.fit` is given, such as ``"train"``; what the user may
            give instead to take all of it, such as ``"'all'"``).
        relocatable: for a pinned folder: another one is taken where the recorded folder
            does not exist (the data moved, or this machine mounts it elsewhere), for this
            run only; the record keeps the first, which other machines may still have.
    """

    help: str | Callable[[], str]
    kind: str = PER_RUN
    flag: str | None = ""
    metavar: str | None = None
    parse: Callable[[Any], Any] | None = None
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    group: str | None = None
    switch: bool = False
    extra_flags: tuple[tuple[str, Any, str], ...] = ()
    to_record: Callable[[Any], Any] | None = None
    from_record: Callable[[Any], Any] | None = None
    fingerprint: tuple[str, str] | None = None
    legacy: Any = _MISSING
    show_default: bool = True
    hidden: bool = False
    fmt: Callable[[Any], str] | None = None
    parse_file: bool = False
    entries: Callable[[], Sequence[Entry]] | None = None
    bounded_by: tuple[str, str] | None = None
    relocatable: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown setting kind {self.kind!r}")


def fingerprint_of(s: Setting, value: Any) -> Any:
    """The fingerprint of ``value`` (see :attr:`Setting.fingerprint`)."""
    import importlib

    assert s.fingerprint is not None
    module, _, name = s.fingerprint[1].partition(":")
    return getattr(importlib.import_module(module), name)(value)


def parse_number(value: Any, convert: Callable[[Any], Any], expected: str) -> Any:
    """``convert(value)`` for a flag's or study file's number (never a bool), or one
    :class:`~nas.errors.NasError` that says what was ``expected``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return convert(value)
    except (TypeError, ValueError):
        raise NasError(f"expected {expected}, got {value!r}") from None


def parse_int(value: Any) -> int:
    """A flag's or study file's integer (not a bool)."""
    number: int = parse_number(value, int, "an integer")
    return number


def parse_float(value: Any) -> float:
    """A flag's or study file's finite number (not a bool, not ``nan`` or ``inf``)."""
    number: float = parse_number(value, float, "a number")
    if not math.isfinite(number):
        raise NasError(f"expected a finite number, got {value!r}")
    return number


def resolved_path(value: Any) -> Any:
    """A folder as a study records it: absolute, so a run from elsewhere finds it."""
    return None if value is None else str(Path(value).expanduser().resolve())


def images_text(value: Any) -> str:
    """An image count as users write it: ``all`` for every image."""
    return "all" if value is None else str(value)


def setting(default: Any, help: str | Callable[[], str], **kwargs: Any) -> Any:
    """A dataclass field declared as a user-facing setting (see :class:`Setting`)."""
    return field(default=default, metadata={"setting": Setting(help=help, **kwargs)})


@dataclass(frozen=True)
class Entry:
    """One setting held in a mapping field (see :attr:`Setting.entries`): ``key`` in the
    mapping, under the setting name ``name`` (its flag, study-file key and recorded key)."""

    key: str
    name: str
    setting: Setting
    default: Any = None


@dataclass(frozen=True)
class Declared:
    """A setting as users see it: a declared field, or an entry of a mapping field.

    Attributes:
        name: flag (with dashes), study-file key and recorded key.
        setting: how it appears.
        field: the dataclass field that holds its value.
        key: its key in that field's mapping (None: the field is the value).
        default: its value when not given.
    """

    name: str
    setting: Setting
    field: str
    key: str | None
    default: Any

    def value(self, settings: Any) -> Any:
        """Its value in ``settings``."""
        held = getattr(settings, self.field)
        return held if self.key is None else held.get(self.key)

    @property
    def flag(self) -> str | None:
        """Its flag (None: study file only)."""
        s = self.setting
        if s.flag is None:
            return None
        return s.flag or "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        """How messages name it: the flag, or the study-file key."""
        return self.flag or f"{self.name} (study file)"

    def named(self, given_as: str = FLAG) -> str:
        """How messages name it to a user who gives settings ``given_as``: its keyword from
        Python, else :attr:`label`."""
        return self.name if given_as == PYTHON else self.label


def pinned(
    default: Any,
    help: str | Callable[[], str],
    metavar: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    group: str | None = None,
    **kwargs: Any,
) -> Any:
    """A pinned setting (a study keeps it for life; see :func:`setting`)."""
    return setting(default, help, kind=PINNED, metavar=metavar, parse=parse, group=group, **kwargs)


def declared(cls: type[Any]) -> list[Declared]:
    """The settings of ``cls`` in declaration order, a mapping field's entries in its place."""
    out: list[Declared] = []
    defaults = {f.name: _field_default(f) for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        s = f.metadata.get("setting")
        if s is None:
            continue
        if s.entries is None:
            out.append(Declared(f.name, s, f.name, None, defaults[f.name]))
            continue
        out.extend(Declared(e.name, e.setting, f.name, e.key, e.default) for e in s.entries())
    return out


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def build(cls: type[Any], values: Mapping[str, Any]) -> Any:
    """``cls`` from values by setting name: an entry's value goes into its mapping field
    (entries not in ``values`` take their defaults; None means none), other settings are
    passed as they are."""
    kwargs: dict[str, Any] = {}
    mappings: dict[str, dict[str, Any]] = {}
    for d in declared(cls):
        if d.key is None:
            if d.name in values:
                kwargs[d.name] = values[d.name]
            continue
        value = values.get(d.name, d.default)
        held = mappings.setdefault(d.field, {})
        if value is not None:
            held[d.key] = value
    return cls(**kwargs, **mappings)


def mapping_field(entries: Callable[[], Sequence[Entry]], help: str) -> Any:
    """A dataclass field holding the settings ``entries`` lists, by key (see
    :attr:`Setting.entries`); its default holds each entry's default that is not None."""

    def default() -> dict[str, Any]:
        return {e.key: e.default for e in entries() if e.default is not None}

    return field(default_factory=default, metadata={"setting": Setting(help=help, entries=entries)})


def shown(value: Any) -> str:
    """A value as users write it: ``5M``-style counts stay numbers, tuples comma-joined."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    label = getattr(value, "label", None)
    return str(label) if isinstance(label, str) else str(value)


def show(s: Setting, value: Any) -> str:
    """A setting's value as users read it (its ``fmt`` says what None means: ``all`` images,
    or no limit)."""
    return s.fmt(value) if s.fmt is not None else shown(value)


def _argtype(parse: Callable[[Any], Any], name: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except NasError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type[Any],
    *,
    only: Iterable[str] | None = None,
    groups: Mapping[str, str] | None = None,
    required: Iterable[str] = (),
    helps: Mapping[str, str] | None = None,
) -> None:
    """Add a flag for every declared setting of ``cls`` (or the settings named in ``only``).

    A flag that is not given leaves no attribute on the namespace (``default=SUPPRESS``), so
    :func:`flags_given` tells a typed value from a default.

    Args:
        groups: ``--help`` section titles by group name (a setting's ``group``); settings
            without a group go to the parser itself.
        required: settings this command cannot do without (``--study`` of ``nas export``).
        helps: another help by setting name, for a command that takes a setting otherwise
            (``nas train-winners`` defaults ``--dataset`` to the study's).
    """
    wanted = set(only) if only is not None else None
    needed = set(required)
    sections: dict[str, argparse._ArgumentGroup] = {}  # by title
    for d in declared(cls):
        s = d.setting
        if d.flag is None or (wanted is not None and d.name not in wanted):
            continue
        target: Any = parser
        if s.group is not None:
            title = (groups or {}).get(s.group, s.group)
            if title not in sections:
                sections[title] = parser.add_argument_group(title)
            target = sections[title]
        kwargs = _flag_kwargs(d)
        if d.name in (helps or {}):
            kwargs["help"] = (helps or {})[d.name]
        if d.name in needed:
            kwargs = {**kwargs, "required": True}
        target.add_argument(d.flag, **kwargs)
        for extra, value, extra_help in s.extra_flags:
            target.add_argument(
                extra,
                action="store_const",
                const=value,
                help=extra_help,
                dest=d.name,
                default=argparse.SUPPRESS,
            )


def _flag_kwargs(d: Declared) -> dict[str, Any]:
    """``add_argument``'s keywords for a declared setting."""
    s = d.setting
    help_text = s.help() if callable(s.help) else s.help
    if s.show_default and "default" not in help_text:
        help_text += f" (default {show(s, d.default)})"
    if s.kind == PINNED:
        help_text += "; pinned by the study"
    kwargs: dict[str, Any] = {
        "dest": d.name,
        "default": argparse.SUPPRESS,
        "help": argparse.SUPPRESS if s.hidden else help_text,
    }
    if s.switch:
        return {**kwargs, "action": "store_const", "const": True}
    if s.parse is not None:
        kwargs["type"] = _argtype(s.parse, d.name.replace("_", " "))
    if s.choices is not None:
        kwargs["choices"] = list(s.choices() if callable(s.choices) else s.choices)
    if s.metavar is not None:
        kwargs["metavar"] = s.metavar
    return kwargs


def flags_given(args: argparse.Namespace, cls: type[Any]) -> dict[str, Any]:
    """The declared settings typed on the command line (a flag not typed is absent)."""
    return {d.name: getattr(args, d.name) for d in declared(cls) if hasattr(args, d.name)}


def given_in_python(settings: Any) -> dict[str, Any]:
    """Settings built in Python, read as a command line would give them: a setting that
    differs from its default counts as given, one at its default as not given."""
    return {
        d.name: d.value(settings)
        for d in declared(type(settings))
        if d.value(settings) != d.default
    }


# ---------------------------------------------------------------------------- type checks
def _accepts(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits a field annotation (int, float, bool, str, optional, tuple)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, a) for a in typing.get_args(annotation))
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        return isinstance(value, tuple) and all(_accepts(v, item) for v in value)
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


@dataclass(frozen=True)
class Problem:
    """What is wrong with one setting's value: ``problem`` reads after the setting's name
    (``must be at least 1``), so the name can be the flag, the keyword or the study-file key."""

    name: str
    value: Any
    problem: str

    def text(self, origin: str = FLAG) -> str:
        """The problem as the user who gave the value (from ``origin``) names the setting:
        ``--trials must be at least 1, got 0``, ``trials must be at least 1, got 0`` (from
        Python) or ``trials = 0 in the study file: must be at least 1``."""
        if origin == FILE:
            return f"{self.name} = {self.value!r} in the study file: {self.problem}"
        return f"{spelled(self.name, origin)} {self.problem}, got {shown(self.value)}"


class SettingsError(NasError):
    """Settings that no run can take: each :class:`Problem` names its setting as it was
    given (``origins``: a setting's origin, ``default`` if absent: the command line, or
    Python for settings built as a dataclass), the rest are sentences of their own (across
    settings: ``unknown sampler 'tpee'``)."""

    def __init__(
        self,
        problems: Sequence[Problem | str],
        origins: Mapping[str, str] | None = None,
        default: str = FLAG,
    ) -> None:
        self.problems = list(problems)
        self.origins = dict(origins or {})
        super().__init__(
            "; ".join(
                p.text(self.origins.get(p.name, default)) if isinstance(p, Problem) else p
                for p in self.problems
            )
        )


def build_given(cls: type[Any], values: Mapping[str, Any], origins: Mapping[str, str]) -> Any:
    """:func:`build`, a problem with a setting named as it was given (``origins``: by setting
    name; ``trials = 0 in the study file: ...`` for a value from the study file).

    Raises:
        SettingsError: for values no run can take.
    """
    try:
        return build(cls, values)
    except SettingsError as exc:
        raise SettingsError(exc.problems, origins) from None


_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def check_types(settings: Any) -> None:
    """Every field's value has its annotated type (a study file may say ``trials = "x"``).

    Raises:
        NasError: naming the first setting of the wrong type.
    """
    hints = _hints(type(settings))
    for d in declared(type(settings)):
        value = d.value(settings)
        if not _accepts(value, hints[d.name]):
            raise NasError(f"setting {d.name} must be {_expected(hints[d.name])}, got {value!r}")


#: The type of every entry of a mapping field (limits are numbers).
ENTRY_TYPE: Any = float | None


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The annotation of every declared setting of ``cls`` by name (entries: a number)."""
    fields = typing.get_type_hints(cls)
    return {d.name: fields[d.name] if d.key is None else ENTRY_TYPE for d in declared(cls)}


def _expected(annotation: Any) -> str:
    """``an integer``, ``a number or ...``, ``a list of strings`` for a field annotation."""
    if typing.get_origin(annotation) is tuple:
        item = _NAMES.get(getattr(typing.get_args(annotation)[0], "__name__", ""), "value")
        return f"a list of {item.split(' ', 1)[-1]}s"
    return " or ".join(
        _NAMES.get(getattr(a, "__name__", ""), str(a))
        for a in (typing.get_args(annotation) or (annotation,))
        if a is not type(None)
    )


# ---------------------------------------------------------------------------- study files
def read_table(
    path: Path, table: str, cls: type[Any], *, others: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``[table]`` of the study file ``path``, each value parsed like its flag.

    Args:
        others: other tables the file may hold (for other commands), left alone.

    Raises:
        NasError: for an unreadable file, an unknown table or setting, or a malformed value.
    """
    from nas.files import read_toml

    raw = read_toml(path, "study file")
    fields = {d.name: d.setting for d in declared(cls)}
    settable = sorted(name for name, s in fields.items() if not s.hidden)
    loose = [k for k, v in raw.items() if not isinstance(v, dict)]
    if loose:  # keys before any table header
        key = loose[0]
        hint = f"put it under [{table}]" if key in settable else did_you_mean(key, settable)[2:]
        raise NasError(
            f"{path}: {key} = ... is outside any table; "
            + (hint or f"settings go under [{table}]: {', '.join(settable)}")
        )
    unknown_tables = sorted(set(raw) - {table, *others})
    if table not in raw and {"backbone", "stages", "attention"} & set(raw):
        raise NasError(
            f"{path} is a search-space file, not a study file: give it as --space {path} "
            f"(a study file holds a [{table}] table of settings)"
        )
    if unknown_tables:
        name = unknown_tables[0]
        hint = did_you_mean(f"[{name}]", [f"[{t}]" for t in (table, *others)])
        raise NasError(f"{path}: unknown table [{name}]" + (hint or f"; use [{table}]"))
    if table not in raw:  # an empty file, or one for another command
        held = f" (it holds {', '.join(f'[{t}]' for t in raw)})" if raw else ""
        raise NasError(f"{path} has no [{table}] table{held}, so it sets nothing for this command")
    values = raw[table]
    hints = _hints(cls)
    unknown = sorted(set(values) - set(settable))
    if unknown:
        key = unknown[0]
        hint = did_you_mean(key, settable)
        raise NasError(
            f"{path}: unknown setting {key!r} in [{table}]"
            + (hint or f"; valid: {', '.join(settable)}")
        )
    out: dict[str, Any] = {}
    for name, value in values.items():
        s = fields[name]
        try:
            out[name] = s.parse(value) if s.parse and s.parse_file else _from_toml(value)
        except NasError as exc:
            raise NasError(f"{path}: setting {name}: {exc}") from None
        choices = s.choices() if callable(s.choices) else s.choices
        if choices is not None and out[name] not in choices and not isinstance(out[name], tuple):
            raise NasError(
                f"{path}: setting {name}: unknown value {out[name]!r}"
                + (did_you_mean(str(out[name]), choices) or f"; valid: {', '.join(choices)}")
            )
        if not _accepts(out[name], hints[name]):
            raise NasError(
                f"{path}: setting {name} must be {_expected(hints[name])}, got {value!r}"
            )
        if s.metavar in ("FILE", "DIR") and isinstance(out[name], str):
            out[name] = _beside(path, out[name])
    return out


def _beside(study_file: Path, value: str) -> str:
    """A file or folder a study file names: as written where that exists from the folder
    the command runs in, else beside the study file where it exists there (a study file
    kept with its space file works from anywhere)."""
    written = Path(value).expanduser()
    near = study_file.parent / written
    if written.is_absolute() or written.exists() or not near.exists():
        return value
    return str(near)


def _from_toml(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(shown(value))


def write_table(settings: Any, table: str, *, skip: Iterable[str] = ()) -> str:
    """``settings`` as a study file that :func:`read_table` reads back to equal values."""
    left_out = set(skip)
    lines = [f"[{table}]"]
    for d in declared(type(settings)):
        s = d.setting
        if d.name in left_out or s.hidden:
            continue
        value = d.value(settings)
        if value is None:
            if s.parse is None or d.key is not None:
                continue
            try:
                if s.parse("all") is None:  # None spelled 'all' (every image)
                    lines.append(f'{d.name} = "all"')
            except NasError:
                pass
            continue
        lines.append(f"{d.name} = {_toml(value)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- records
def to_record(s: Setting, value: Any) -> Any:
    """A value as a study records it (JSON)."""
    if s.to_record is not None:
        return s.to_record(value)
    return list(value) if isinstance(value, tuple) else value


def from_record(s: Setting, value: Any) -> Any:
    """A recorded value back to the field's type."""
    if s.from_record is not None:
        return s.from_record(value)
    return tuple(value) if isinstance(value, list) else value


def recorded(settings: Any) -> dict[str, Any]:
    """What a study records of ``settings``: every pinned and kept setting, and the
    fingerprints of the pinned files."""
    data: dict[str, Any] = {}
    for d in declared(type(settings)):
        s = d.setting
        if s.kind == PER_RUN:
            continue
        value = d.value(settings)
        data[d.name] = to_record(s, value)
        if s.fingerprint is not None:
            data[s.fingerprint[0]] = fingerprint_of(s, value)
    return data


@dataclass(frozen=True)
class Resolved:
    """The effective settings of a run.

    Attributes:
        settings: the settings dataclass.
        record_found: whether the study had a record (it exists).
        origins: where each field's value came from (flag, study file, recorded, legacy,
            default).
        replaced: kept settings given anew, as (recorded value, new value): the record is
            updated with them.
        names: every declared setting as this run's user names it (``--proxy-subset`` on the
            command line, ``proxy_subset`` from Python: :meth:`Declared.named`), for what
            later steps say about it.
        moved: relocatable settings given another place than the recorded one, which is
            not on this machine (:attr:`Setting.relocatable`), as (recorded, given) as the
            study records them: this run uses the given one, the record keeps the first.
    """

    settings: Any
    origins: dict[str, str]
    replaced: dict[str, tuple[Any, Any]]
    record_found: bool = False
    names: dict[str, str] = field(default_factory=dict)
    moved: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def fit(self, room: Mapping[str, tuple[int, str]]) -> tuple[Resolved, list[str]]:
        """Fit the counts the data may not meet (:attr:`Setting.bounded_by`) to ``room``
        (per quantity: how much the data hold, and that said in words). What happens to a
        count above it depends on where it came from:

        * given (a flag, Python, a study file): refused in one line that names the setting
          as it was given and what the data allow;
        * a default: reduced to what the data hold, with one line saying so (returned), so
          the study records the reduced value;
        * recorded by the study (or implied by its age): kept, since the data set is pinned
          and these are the images the study's trials were trained on.

        Raises:
            NasError: in one line, for a given count the data cannot meet.
        """
        changes: dict[str, Any] = {}
        notes: list[str] = []
        for d in declared(type(self.settings)):
            bound = d.setting.bounded_by
            value = d.value(self.settings)
            if bound is None or value is None or bound[0] not in room:
                continue
            available, holds = room[bound[0]]
            if value <= available:
                continue
            origin = self.origins.get(d.name, DEFAULT)
            named = self.names.get(d.name, d.name)
            instead = f"give at most {available}" + (f" or {bound[1]}" if bound[1] else "")
            if origin in (FLAG, PYTHON):
                raise NasError(f"{named} {value}: {holds}; {instead}")
            if origin == FILE:
                raise NasError(f"{d.name} = {value} in the study file: {holds}; {instead}")
            if origin == DEFAULT:  # not recorded, nor implied by the study's age
                changes[d.name] = available
                notes.append(
                    f"{named}: the default {value:,} is more than the data hold ({holds}); "
                    f"using {available:,}, and the study records it"
                )
        if not changes:
            return self, []
        fitted = dataclasses.replace(self.settings, **changes)
        return dataclasses.replace(self, settings=fitted), notes

    def to_record(self) -> dict[str, Any]:
        """What a study records of these settings (:func:`recorded`)."""
        return recorded(self.settings)


def resolve(
    cls: type[Any],
    *,
    flags: Mapping[str, Any],
    file: Mapping[str, Any],
    record: Mapping[str, Any] | None,
    study: str = "the study",
    given_as: str = FLAG,
) -> Resolved:
    """The effective settings: a flag wins over the study file, the file over the study's
    record, the record over the defaults. Per-run settings are never taken from the record.
    ``given_as``: where ``flags`` came from (:data:`FLAG`, or :data:`PYTHON` for keyword
    arguments); messages name the settings that way.

    Raises:
        NasError: in one line, when a flag or the study file gives a pinned setting another
            value than the study recorded (naming the flag, the recorded and the given value),
            or when a pinned file changed since the study recorded it.
    """
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    replaced: dict[str, tuple[Any, Any]] = {}
    conflicts: list[str] = []
    items = declared(cls)
    for d in items:
        name = d.name
        before = _recorded_value(d.setting, name, record)
        if name in flags or name in file:
            given = flags[name] if name in flags else file[name]
            values[name], origins[name] = given, given_as if name in flags else FILE
            conflict = _conflict(d, given, before, record, origins[name])
            if conflict:
                conflicts.append(conflict)
            elif _replaces(d.setting, given, before):
                assert before is not None
                replaced[name] = (before[0], given)
        elif before is not None:
            values[name], origins[name] = before
        else:
            origins[name] = DEFAULT
    another = f"choose another {spelled('study', given_as)}"
    if conflicts:
        drop = (
            "Leave the setting (or study-file line) out"
            if given_as == PYTHON
            else "Drop the flag (or study-file line)"
        )
        raise NasError(
            f"{study} keeps its pinned settings: " + "; ".join(conflicts) + f". {drop} "
            f"to continue with the recorded value, or {another}"
        )
    settings = build_given(cls, values, origins)
    for d in items:  # a pinned file not given must still hold what was recorded
        s = d.setting
        if s.fingerprint is None or record is None or origins[d.name] in GIVEN:
            continue
        key = s.fingerprint[0]
        if key not in record:
            continue
        what = d.name if given_as == PYTHON else d.flag or d.name
        try:
            now = fingerprint_of(s, d.value(settings))
        except NasError:  # moved or deleted
            raise NasError(
                f"{study} was created with {what} {shown(d.value(settings))}, which is no "
                f"longer there; give a copy of it with {what} FILE (its content is checked), "
                f"or {another}"
            ) from None
        if now != record[key]:
            raise NasError(
                f"{study} was created with {what} {shown(d.value(settings))}, whose "
                "content has changed since; restore the file (or give the original with "
                f"{what}), or {another}"
            )
    names = {d.name: d.named(given_as) for d in items}
    moved = _moved(items, values, origins, record)
    return Resolved(settings, origins, replaced, record is not None, names, moved)


def _moved(
    items: Sequence[Declared],
    values: Mapping[str, Any],
    origins: Mapping[str, str],
    record: Mapping[str, Any] | None,
) -> dict[str, tuple[Any, Any]]:
    """The relocatable settings given another place than the recorded one (which
    :func:`_conflict` let pass: it is not on this machine), as (recorded, given)."""
    moved = {}
    for d in items:
        before = _recorded_value(d.setting, d.name, record)
        if not (d.setting.relocatable and origins[d.name] in GIVEN and before is not None):
            continue
        given = values[d.name]
        if _differs(d, given, before[0]):
            moved[d.name] = (to_record(d.setting, before[0]), to_record(d.setting, given))
    return moved


def _replaces(s: Setting, given: Any, before: tuple[Any, str] | None) -> bool:
    """Whether ``given`` replaces the recorded value of a kept setting."""
    return before is not None and s.kind == KEPT and to_record(s, given) != to_record(s, before[0])


def _recorded_value(
    s: Setting, name: str, record: Mapping[str, Any] | None
) -> tuple[Any, str] | None:
    """What the record says of a pinned or kept setting, with its origin (recorded, or the
    legacy value of a study recorded before the setting existed); None: nothing."""
    if record is None or s.kind == PER_RUN:
        return None
    if name in record:
        return from_record(s, record[name]), RECORDED
    if s.legacy is not _MISSING:
        return s.legacy, LEGACY
    return None


def _conflict(
    d: Declared,
    given: Any,
    before: tuple[Any, str] | None,
    record: Mapping[str, Any] | None,
    origin: str,
) -> str | None:
    """Why an explicit value of a pinned setting, given from ``origin``, is refused (None: it
    is not)."""
    if d.setting.kind != PINNED or record is None:
        return None
    if d.setting.fingerprint is not None:
        return _file_conflict(d, given, record, origin)
    return None if before is None else _pinned_conflict(d, given, before[0], origin)


def _file_conflict(d: Declared, given: Any, record: Mapping[str, Any], origin: str) -> str | None:
    """A pinned file given explicitly must have the content the study recorded: its path
    may differ (a copy elsewhere), its content may not."""
    s = d.setting
    assert s.fingerprint is not None
    key = s.fingerprint[0]
    if key not in record or fingerprint_of(s, given) == record[key]:
        return None
    recorded_path = f" ({shown(record[d.name])})" if d.name in record else ""
    return (
        f"{d.named(origin)} {shown(given)} has other content than the recorded file{recorded_path}"
    )


def _differs(d: Declared, given: Any, before: Any) -> bool:
    """Whether ``given`` differs from the recorded ``before`` as the study records them."""
    return bool(to_record(d.setting, given) != to_record(d.setting, before))


def _pinned_conflict(d: Declared, given: Any, before: Any, origin: str) -> str | None:
    """The conflict text when ``given`` differs from the recorded ``before`` (None: same)."""
    if not _differs(d, given, before):
        return None
    if d.setting.relocatable and before is not None and not Path(str(before)).exists():
        return None  # the recorded folder is not on this machine: the one given stands in
    return f"{d.named(origin)} recorded {show(d.setting, before)}, given {show(d.setting, given)}"


def describe(resolved: Resolved) -> list[tuple[str, str, str, str]]:
    """(setting, value, origin, kind) of every declared field, for ``--show-settings``."""
    rows = []
    for d in declared(type(resolved.settings)):
        s = d.setting
        if s.hidden:
            continue
        value = show(s, d.value(resolved.settings))
        origin = resolved.origins.get(d.name, DEFAULT)
        if d.name in resolved.replaced:
            origin += f" (recorded {show(s, resolved.replaced[d.name][0])})"
        rows.append((d.label, value, origin, s.kind))
    return rows


# ---------------------------------------------------------------------------- a run's sources
class RecordHolder(Protocol):
    """Where a study's record is read from (a :class:`nas.study.address.StudyAddress`)."""

    @property
    def name(self) -> str: ...

    def peek_attr(self, key: str) -> Any: ...


@dataclass(frozen=True)
class SettingsSource:
    """What a run was given: the flags typed and the study file's values, with the settings
    class and the study attribute that holds its record. A study records its pinned and kept
    settings when created and gives them back when resumed (:meth:`resolve`: flag > study
    file > record > default).

    Attributes:
        cls: the settings dataclass.
        key: the study user attribute that holds the record.
        flags: declared settings given on the command line (or, ``given_as`` :data:`PYTHON`,
            as keyword arguments).
        file: declared settings given by the study file.
        given_as: where ``flags`` came from; messages name every setting that way
            (``--trials`` or ``trials``).
    """

    cls: type[Any]
    key: str
    flags: Mapping[str, Any] = field(default_factory=dict)
    file: Mapping[str, Any] = field(default_factory=dict)
    given_as: str = FLAG

    def resolve(self, record: Mapping[str, Any] | None, study: str) -> Resolved:
        """The effective settings against ``record`` (None: a new study)."""
        return resolve(
            self.cls,
            flags=self.flags,
            file=self.file,
            record=record,
            study=f"study {study!r}",
            given_as=self.given_as,
        )

    def origins(self) -> dict[str, str]:
        """Where each setting given for this run came from (the flag or keyword winning
        over the study file)."""
        return {**dict.fromkeys(self.file, FILE), **dict.fromkeys(self.flags, self.given_as)}

    def peek(self, address: RecordHolder) -> Resolved:
        """The effective settings against the study's record as it is now, creating nothing
        (``--show-settings``, and the settings a run prepares its data with)."""
        record = address.peek_attr(self.key)
        return self.resolve(record if isinstance(record, dict) else None, address.name)

    def given(self, name: str, default: Any = None) -> Any:
        """A setting as the command line or the study file gave it (``default`` if neither)."""
        return self.flags.get(name, self.file.get(name, default))
