"""Search settings as typed data, merged from defaults, a study file and the command line.

A study file (TOML, under ``studies/``) holds a ``[search]`` table with the same names as the
command-line flags (``param_limit = "5M"``, ``proxy_epochs = 3``, ...). The command line wins
over the file, the file over the defaults.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import NasError
from nas.files import read_toml
from nas.registry import Registry
from nas.training.recipe import DEFAULT_PROXY_RECIPE, PROXY_RECIPES
from nas.units import human, parse_count

if TYPE_CHECKING:
    from nas.proxy.context import ProxySpec
    from nas.search.samplers import SamplerFactory

#: What the second objective can be; accuracy is always the first.
OBJECTIVE_SETS = {
    "accuracy,params": ("accuracy", "params"),
    "accuracy,flops": ("accuracy", "flops"),
    "accuracy": ("accuracy",),
}
#: Optuna samplers by name (:mod:`nas.search.samplers` registers them; see ``--sampler``).
SAMPLERS: Registry[SamplerFactory] = Registry(
    "sampler", names=("tpe", "nsga2", "random"), home="nas.search.samplers"
)
#: Early-stopping rules: multi-objective successive halving, or none.
EARLY_STOPPING = ("sha", "off")
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


@dataclass(frozen=True)
class SearchSettings:
    """Everything ``nas search`` needs (see ``nas search --help`` for each field)."""

    space: str = "search_spaces/attention_resnet.toml"
    dataset: str = "cifar10"
    data_dir: str | None = None
    param_limit: int = 5_000_000
    flops_limit: int | None = None
    trials: int = 20
    objectives: tuple[str, ...] = ("accuracy", "params")
    sampler: str = "tpe"
    proxy_epochs: int = 3
    proxy_subset: int | None = 5000
    proxy_val: int | None = 2000
    proxy_batch_size: int | None = None
    proxy_lr: float = 0.8
    proxy_recipe: str = DEFAULT_PROXY_RECIPE
    val_fraction: float = 0.1
    storage: str | None = None
    study: str | None = None
    seed: int = 0
    device: str = "auto"
    timeout: float | None = None
    enqueue_presets: bool = False
    early_stopping: str = "sha"
    eta: float = 2.0
    min_epochs: int = 1
    quiet: bool = False
    workers: int = 1
    worker_index: int = 0
    grace_period: int = 60
    db_retry: float = 60.0
    max_failures: int = 10

    def __post_init__(self) -> None:
        _check_types(self)
        problems = []
        for name in ("trials", "proxy_epochs", "workers", "max_failures"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("proxy_subset", "proxy_val", "proxy_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 2:
                problems.append(f"--{name.replace('_', '-')} must be at least 2")
        if self.proxy_recipe not in PROXY_RECIPES:
            problems.append(
                f"unknown proxy recipe {self.proxy_recipe!r}; valid: {', '.join(PROXY_RECIPES)}"
            )
        if self.early_stopping not in EARLY_STOPPING:
            problems.append(
                f"--early-stopping must be one of {', '.join(EARLY_STOPPING)}, "
                f"got {self.early_stopping!r}"
            )
        if not self.eta > 1:
            problems.append(f"--eta must be greater than 1, got {self.eta:g}")
        if self.min_epochs < 1:
            problems.append("--min-epochs must be at least 1")
        if self.db_retry < 0:
            problems.append("--db-retry must be at least 0 seconds")
        if self.grace_period < 2:
            problems.append("--grace-period must be at least 2 seconds")
        if self.study is not None and not STUDY_NAME.match(self.study):
            problems.append(f"study name {self.study!r} may use letters, digits, '_', '-', '.'")
        if self.timeout is not None and self.timeout <= 0:
            problems.append("--timeout must be positive")
        if problems:
            raise NasError("; ".join(problems))

    @property
    def study_name(self) -> str:
        """The study's name: ``--study``, else one derived from space, data set and limit."""
        if self.study:
            return self.study
        return f"{Path(self.space).stem}-{self.dataset}-{human(self.param_limit, 1)}"

    @property
    def storage_url(self) -> str:
        """``--storage``, else a SQLite file under ``studies/``."""
        from nas.search.storage import default_storage_path, sqlite_url

        return self.storage or sqlite_url(default_storage_path(self.study_name))

    @property
    def proxy(self) -> ProxySpec:
        """How this search's proxies train."""
        from nas.proxy.context import ProxySpec

        return ProxySpec(
            epochs=self.proxy_epochs,
            subset=self.proxy_subset,
            val=self.proxy_val,
            batch_size=self.proxy_batch_size,
            lr=self.proxy_lr,
            recipe=self.proxy_recipe,
            val_fraction=self.val_fraction,
        )

    def replace(self, **changes: Any) -> SearchSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
    return isinstance(value, annotation)


_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _check_types(settings: SearchSettings) -> None:
    """A study file's values must have the type of the flag they stand for."""
    hints = typing.get_type_hints(SearchSettings)
    for f in fields(SearchSettings):
        value = getattr(settings, f.name)
        if not _accepts(value, hints[f.name]):
            expected = " or ".join(
                _NAMES.get(getattr(a, "__name__", ""), str(a))
                for a in (typing.get_args(hints[f.name]) or (hints[f.name],))
                if a is not type(None)
            )
            raise NasError(f"setting {f.name} must be {expected}, got {value!r}")


def parse_objectives(text: str) -> tuple[str, ...]:
    """``accuracy,params`` -> ("accuracy", "params"); refuses anything not in OBJECTIVE_SETS."""
    key = ",".join(p.strip() for p in str(text).split(",") if p.strip())
    if key not in OBJECTIVE_SETS:
        raise NasError(f"unknown objectives {text!r}; valid: {', '.join(OBJECTIVE_SETS)}")
    return OBJECTIVE_SETS[key]


def _coerce(name: str, value: Any) -> Any:
    if name == "param_limit":
        return parse_count(value, "parameter limit")
    if name == "flops_limit":
        return parse_count(value, "FLOPs limit")
    if name == "early_stopping" and isinstance(value, bool):  # study files before 'sha'
        return "sha" if value else "off"
    if name == "objectives":
        return parse_objectives(",".join(value) if isinstance(value, list) else value)
    return value


def load_study_file(path: str | Path) -> dict[str, Any]:
    """The ``[search]`` table of a study file, validated against :class:`SearchSettings`."""
    p = Path(path)
    raw = read_toml(p, "study file")
    unknown_tables = sorted(set(raw) - {"search", "train_winners"})
    if unknown_tables:
        raise NasError(f"{p}: unknown table(s) {', '.join(unknown_tables)}; use [search]")
    table = raw.get("search", {})
    valid = {f.name for f in fields(SearchSettings)}
    unknown = sorted(set(table) - valid)
    if unknown:
        raise NasError(
            f"{p}: unknown setting(s) {', '.join(unknown)} in [search]; valid: "
            f"{', '.join(sorted(valid))}"
        )
    return {k: _coerce(k, v) for k, v in table.items()}


def merge(file_values: dict[str, Any], cli_values: dict[str, Any]) -> SearchSettings:
    """Defaults, overridden by the study file, overridden by flags given on the command line."""
    values = {**file_values, **{k: v for k, v in cli_values.items() if v is not None}}
    for key in ("proxy_subset", "proxy_val"):  # 'all' images: no subset
        if values.get(key) == "all":
            values[key] = None
    return SearchSettings(**values)
