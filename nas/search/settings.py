"""Search settings as typed data, each declared once (see :mod:`nas.settings`).

Every field carries its flag, help, kind and parser; ``nas search``'s flags, the study
file's ``[search]`` table, what a study records and what it pins all come from here. A run
takes, for each setting, the flag if given, else the study file's value, else the study's
recorded value (pinned and kept settings), else the default.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.data.catalog import DATASETS
from nas.errors import NasError
from nas.registry import Registry
from nas.settings import (
    KEPT,
    PINNED,
    check_types,
    images_text,
    parse_float,
    parse_int,
    resolved_path,
    setting,
)
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
#: Finished trials (COMPLETE or PRUNED, rejections included) TPE samples at random before it
#: models anything (its ``n_startup_trials``): the study's random start-up.
TPE_STARTUP = 10
#: Early-stopping rules: multi-objective successive halving, or none.
EARLY_STOPPING = ("sha", "off")
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")

#: Lower bounds: (setting, minimum, unit of the message).
MINIMUMS = (
    ("trials", 1, ""),
    ("proxy_epochs", 1, ""),
    ("workers", 1, ""),
    ("max_failures", 1, ""),
    ("min_members", 1, ""),
    ("min_epochs", 1, ""),
    ("proxy_subset", 2, ""),
    ("proxy_val", 2, ""),
    ("proxy_batch_size", 2, ""),
    ("db_retry", 0, " seconds"),
    ("grace_period", 2, " seconds"),
)

#: ``--help`` sections of the settings' groups.
GROUPS = {
    "search": "search",
    "stopping": "early stopping: asynchronous successive halving, multi-objective aware",
    "proxy": "proxy training",
    "data": "data",
    "study": "study",
    "workers": "workers",
}


def parse_objectives(value: Any) -> tuple[str, ...]:
    """``accuracy,params`` (or a list of names) -> ("accuracy", "params")."""
    text = ",".join(value) if isinstance(value, list | tuple) else str(value)
    key = ",".join(p.strip() for p in text.split(",") if p.strip())
    if key not in OBJECTIVE_SETS:
        raise NasError(f"unknown objectives {text!r}; valid: {', '.join(OBJECTIVE_SETS)}")
    return OBJECTIVE_SETS[key]


def parse_images(value: Any) -> int | None:
    """A number of images, or ``all`` (None: every image)."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise NasError(f"expected a number of images or 'all', got {value!r}") from None


def parse_early_stopping(value: Any) -> str:
    """``sha`` or ``off`` (study files from before said true or false)."""
    if isinstance(value, bool):
        return "sha" if value else "off"
    if value not in EARLY_STOPPING:
        raise NasError(f"--early-stopping must be one of {', '.join(EARLY_STOPPING)}")
    return str(value)


_int, _float = parse_int, parse_float


@dataclass(frozen=True)
class SearchSettings:
    """Everything ``nas search`` needs (``nas search --help`` shows each field's help)."""

    space: str = setting(
        "search_spaces/attention_resnet.toml",
        "search-space TOML",
        kind=PINNED,
        metavar="FILE",
        group="search",
        fingerprint=("space_sha1", "nas.space.space:space_sha1"),
    )
    param_limit: int = setting(
        5_000_000,
        "hard parameter limit: 5M, 4.5e6, 500k ...",
        kind=PINNED,
        metavar="LIMIT",
        parse=lambda v: parse_count(v, "parameter limit"),
        parse_file=True,
        fmt=human,
        group="search",
    )
    flops_limit: int | None = setting(
        None,
        "hard FLOPs limit per image (1 multiply-add = 1 flop): 500M, 2G ...; over it a "
        "candidate is rejected before training, like the parameter limit, and the sampler "
        "learns it",
        kind=PINNED,
        metavar="LIMIT",
        parse=lambda v: parse_count(v, "FLOPs limit"),
        parse_file=True,
        fmt=human,
        group="search",
        legacy=None,
    )
    trials: int = setting(
        20,
        "trained trials the study should have in all; rejected candidates do not count",
        kind=KEPT,
        metavar="N",
        parse=_int,
        group="search",
    )
    objectives: tuple[str, ...] = setting(
        ("accuracy", "params"),
        "what to optimise: " + ", ".join(OBJECTIVE_SETS),
        kind=PINNED,
        metavar="OBJ",
        parse=parse_objectives,
        parse_file=True,
        group="search",
    )
    sampler: str = setting(
        "tpe",
        "Optuna sampler: tpe (multivariate, learns the limit from rejections), nsga2 "
        "(population a quarter of --trials, 4..50; rejected candidates count as infeasible "
        "members of their generation), random",
        kind=KEPT,
        choices=SAMPLERS.names,
        group="search",
    )
    seed: int = setting(
        0,
        "seed of the data order, the initial weights and the sampler",
        kind=PINNED,
        metavar="S",
        parse=_int,
        group="search",
    )
    timeout: float | None = setting(
        None,
        "stop starting new trials after SEC seconds",
        metavar="SEC",
        parse=_float,
        group="search",
    )
    enqueue_presets: bool = setting(
        False, "start with the seed presets that fit the limits", switch=True, group="search"
    )
    early_stopping: str = setting(
        "sha",
        "'sha' (after epochs m, m*eta, m*eta^2, ... below --proxy-epochs a proxy goes on only "
        "if no trial of no higher cost beat it at that epoch, or it is in the top 1/eta of the "
        "trials that got there; never stopped by a costlier trial) or 'off'",
        kind=PINNED,
        choices=EARLY_STOPPING,
        parse=parse_early_stopping,
        parse_file=True,
        from_record=parse_early_stopping,
        group="stopping",
        legacy="sha",
        extra_flags=(("--no-early-stopping", "off", "the same as --early-stopping off"),),
    )
    eta: float = setting(
        2.0,
        "keep the top 1/eta at each rung; rungs eta times apart",
        kind=PINNED,
        parse=_float,
        group="stopping",
        legacy=2.0,
    )
    min_epochs: int = setting(
        1,
        "epochs before the first decision (the first rung); 2 stops less often on a noisy "
        "first epoch, at about half the time saved (README: early stopping)",
        kind=PINNED,
        metavar="M",
        parse=_int,
        group="stopping",
        legacy=1,
    )
    min_members: int = setting(
        3,
        "trials that must have reached a rung before any trial is stopped there",
        kind=PINNED,
        metavar="N",
        parse=_int,
        group="stopping",
        legacy=1,
    )
    proxy_epochs: int = setting(
        3, "epochs per candidate", kind=PINNED, metavar="E", parse=_int, group="proxy"
    )
    proxy_subset: int | None = setting(
        5000,
        "training images per candidate, or 'all'",
        kind=PINNED,
        metavar="N",
        parse=parse_images,
        parse_file=True,
        fmt=images_text,
        group="proxy",
    )
    proxy_val: int | None = setting(
        2000,
        "validation images scored per epoch, or 'all'",
        kind=PINNED,
        metavar="N",
        parse=parse_images,
        parse_file=True,
        fmt=images_text,
        group="proxy",
    )
    proxy_batch_size: int | None = setting(
        None,
        "images per step (default: about 60 steps per epoch, 32..256)",
        kind=PINNED,
        metavar="B",
        parse=_int,
        group="proxy",
    )
    proxy_lr: float = setting(
        0.8,
        "peak learning rate for a batch of 256 images, scaled linearly with the batch size "
        "(Goyal et al. 2017): at batch B the rate is LR * B / 256, e.g. 0.2 at batch 64",
        kind=PINNED,
        metavar="LR",
        parse=_float,
        group="proxy",
    )
    proxy_recipe: str = setting(
        DEFAULT_PROXY_RECIPE,
        "how proxies train: 'standard' crops after padding by 4, flips, label smoothing 0.1; "
        "'fast' adds airbench's label smoothing 0.2, padding 2 and flip test-time "
        "augmentation. Compare them with nas fidelity --ladder 3x5000,3x5000:fast",
        kind=PINNED,
        choices=PROXY_RECIPES.names,
        group="proxy",
        legacy=DEFAULT_PROXY_RECIPE,
    )
    val_fraction: float = setting(
        0.1,
        "share of the training images held out as the validation split",
        kind=PINNED,
        flag=None,
        parse=_float,
    )
    dataset: str = setting(
        "cifar10",
        "data set; 'fake' is random images for smoke tests only",
        kind=PINNED,
        choices=DATASETS.names,
        group="data",
    )
    data_dir: str | None = setting(
        None,
        "where torchvision data sets download to, or the image folder (DIR/train/<class>/*, "
        "DIR/test/<class>/*); default: a user cache folder",
        kind=PINNED,
        metavar="DIR",
        group="data",
        to_record=resolved_path,
        show_default=False,
    )
    device: str = setting(
        "auto",
        "where to train: auto (CUDA if available), cpu, cuda, cuda:N",
        metavar="{auto,cpu,cuda}",
        group="data",
    )
    storage: str | None = setting(
        None,
        "SQLAlchemy URL of the study database (default: sqlite:///studies/STUDY.db; "
        "postgresql+psycopg://... for many workers)",
        metavar="URL",
        group="study",
        show_default=False,
    )
    study: str | None = setting(
        None,
        "study name (default: derived from space, data set and limit)",
        metavar="NAME",
        group="study",
        show_default=False,
    )
    quiet: bool = setting(
        False, "plain log lines instead of the live table", switch=True, group="workers"
    )
    workers: int = setting(
        1,
        "local worker processes sharing the study, spread over the GPUs round-robin: each "
        "gets CUDA_VISIBLE_DEVICES set to its one GPU (taken from yours if set), so K above "
        "the GPU count puts several on one GPU; for many machines, run nas search on each "
        "with one --storage postgresql+psycopg:// URL",
        metavar="K",
        parse=_int,
        group="workers",
    )
    worker_index: int = setting(0, "", parse=_int, hidden=True, group="workers")
    grace_period: int = setting(
        60,
        "seconds without heartbeat before a worker's trial is failed and retried",
        metavar="SEC",
        parse=_int,
        group="workers",
    )
    db_retry: float = setting(
        60.0,
        "when the study database goes away (a restart, a network blip), retry with backoff "
        "for up to SEC seconds while training goes on; past that, exit with one line and "
        "leave the trial to the heartbeat recovery",
        metavar="SEC",
        parse=_float,
        group="workers",
    )
    max_failures: int = setting(
        10, "failed trials in a row that end the search", flag=None, parse=_int
    )

    def __post_init__(self) -> None:
        check_types(self)
        problems = [*self._below_minimum(), *self._invalid()]
        if problems:
            raise NasError("; ".join(problems))

    def _below_minimum(self) -> list[str]:
        """A message per setting below its minimum (see :data:`MINIMUMS`)."""
        problems = []
        for name, low, unit in MINIMUMS:
            value = getattr(self, name)
            if value is not None and value < low:
                problems.append(f"--{name.replace('_', '-')} must be at least {low}{unit}")
        return problems

    def _invalid(self) -> list[str]:
        """A message per setting whose value is not one it can take."""
        checks = (
            (self.proxy_recipe in PROXY_RECIPES, f"unknown proxy recipe {self.proxy_recipe!r}; "
             f"valid: {', '.join(PROXY_RECIPES)}"),
            (self.early_stopping in EARLY_STOPPING, f"--early-stopping must be one of "
             f"{', '.join(EARLY_STOPPING)}, got {self.early_stopping!r}"),
            (self.eta > 1, f"--eta must be greater than 1, got {self.eta:g}"),
            (self.study is None or bool(STUDY_NAME.match(self.study)),
             f"study name {self.study!r} may use letters, digits, '_', '-', '.'"),
            (self.timeout is None or self.timeout > 0, "--timeout must be positive"),
        )  # fmt: skip
        return [message for ok, message in checks if not ok]

    @property
    def study_name(self) -> str:
        """The study's name: ``--study``, else one derived from space, data set and limit."""
        if self.study:
            return self.study
        return f"{Path(self.space).stem}-{self.dataset}-{human(self.param_limit, 1)}"

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
