"""``nas fidelity``: train a panel of candidates at every rung of a ladder of proxy
fidelities and at a reference fidelity, and measure how well each rung (and each zero-cost
score) ranks the panel the way the reference does.

Everything lives in a study database, so an interrupted run resumes, several workers (and
machines, on PostgreSQL) share the jobs, and optuna-dashboard shows them. The study's user
attributes hold the settings and the panel (configs, counts, zero-cost scores); each job
(candidate x rung) is one trial with user attributes ``candidate``, ``rung``, ``accuracy``,
``seconds``; its value is the validation accuracy. A worker claims the first open job under
the database's set-up lock (:func:`nas.search.storage.exclusive`), so no job is claimed twice.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas.config import ArchConfig
from nas.counting import count
from nas.data import ImageData, validation_split
from nas.errors import ConfigError, NasError
from nas.fidelity.ladder import Rung
from nas.proxy.context import ProxySpec, candidate_zero_cost, init_seed, make_trainer, proxy_context
from nas.proxy.ranking import Agreement, agreement
from nas.space import SearchSpace
from nas.training.recipe import DEFAULT_PROXY_RECIPE
from nas.units import human


@dataclass(frozen=True)
class FidelitySettings:
    """Everything ``nas fidelity`` needs (see ``nas fidelity --help``)."""

    space: str = "search_spaces/small_cifar.toml"
    dataset: str = "cifar10"
    data_dir: str | None = None
    param_limit: int = 5_000_000
    panel: int = 12
    ladder: tuple[Rung, ...] = (Rung(1, 2000), Rung(3, 5000), Rung(5, 10000))
    reference: Rung = Rung(30, None)  # noqa: RUF009 (a frozen dataclass)
    val: int = 2000
    proxy_lr: float = 0.8
    seed: int = 0
    device: str = "auto"
    storage: str | None = None
    study: str | None = None
    target_tau: float = 0.6

    def __post_init__(self) -> None:
        if self.panel < 3:
            raise NasError("--panel must be at least 3 (a rank correlation needs 3 candidates)")
        if self.reference in self.ladder:
            raise NasError(f"the reference {self.reference.label} is also a rung of the ladder")
        if self.val < 2:
            raise NasError("--val must be at least 2")

    @property
    def study_name(self) -> str:
        return self.study or f"fidelity-{Path(self.space).stem}-{self.dataset}"

    @property
    def storage_url(self) -> str:
        from nas.search.storage import default_storage_path, sqlite_url

        return self.storage or sqlite_url(default_storage_path(self.study_name))

    @property
    def rungs(self) -> tuple[Rung, ...]:
        """The ladder, then the reference."""
        return (*self.ladder, self.reference)

    def recorded(self, space_file: Path) -> dict[str, Any]:
        """What the study records; a resumed run must match it. The ladder and the
        reference are not among them: a job's result depends only on its own rung, so a
        later run may add rungs or change the reference and reuses every finished job."""
        return {
            "space_sha1": hashlib.sha1(space_file.read_bytes()).hexdigest(),
            "dataset": self.dataset,
            "param_limit": self.param_limit,
            "panel": self.panel,
            "val": self.val,
            "proxy_lr": self.proxy_lr,
            "seed": self.seed,
        }


def sample_panel(
    space: SearchSpace, data: ImageData, n: int, limit: int, seed: int
) -> list[ArchConfig]:
    """``n`` distinct candidates of ``space`` that fit ``limit``, sampled at random with
    ``seed`` (the same panel for every worker)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    panel: list[ArchConfig] = []
    seen: set[str] = set()
    for _ in range(200 * n):
        trial = study.ask()
        try:
            arch = space.suggest(
                trial,
                in_channels=data.in_channels,
                input_size=data.input_size,
                num_classes=data.num_classes,
            )
        except ConfigError:
            continue
        key = json.dumps(arch.to_dict(), sort_keys=True)
        if key in seen or count(arch, flops=False).params > limit:
            continue
        seen.add(key)
        panel.append(arch)
        if len(panel) == n:
            return panel
    raise NasError(
        f"found only {len(panel)} distinct candidates of space {space.name!r} under "
        f"{human(limit)} params; lower --panel or raise --param-limit"
    )


Say = Callable[[str], None]


class FidelityRun:
    """One worker of a fidelity study: prepares the panel, trains open jobs, summarises."""

    def __init__(self, settings: FidelitySettings, say: Say) -> None:
        from nas.data import load_dataset
        from nas.search.storage import exclusive, open_storage
        from nas.space import load_space, resolve_space_path
        from nas.training import resolve_device

        self.settings = settings
        self.say = say
        self.space = load_space(settings.space)
        self.data = load_dataset(settings.dataset, settings.data_dir)
        self.device = resolve_device(settings.device)
        self.available = len(validation_split(len(self.data.train_y)).train)
        storage = open_storage(settings.storage_url)
        with exclusive(settings.storage_url):  # workers started together create it once
            self.study = optuna.create_study(
                study_name=settings.study_name,
                storage=storage,
                direction="maximize",
                load_if_exists=True,
            )
            recorded = settings.recorded(resolve_space_path(settings.space))
            before = self.study.user_attrs.get("fidelity_settings")
            changed = ", ".join(k for k in recorded if before and before.get(k) != recorded[k])
            if changed:
                raise NasError(
                    f"fidelity study {settings.study_name!r} was run with other settings "
                    f"({changed}); use the same ones to resume, or another --study"
                )
            if before is None:
                self.study.set_user_attr("fidelity_settings", recorded)
        self.contexts: dict[Rung, Any] = {}
        self.started: set[int] = set()  # trial numbers this worker ran

    # ------------------------------------------------------------------ the panel
    def context(self, rung: Rung) -> Any:
        """The proxy context (split, recipe, normalisation) of ``rung``."""
        if rung not in self.contexts:
            s = self.settings
            spec = ProxySpec(rung.epochs, rung.subset, s.val, None, s.proxy_lr, rung.recipe)
            self.contexts[rung] = proxy_context(spec, self.data, self.device, s.seed)
        return self.contexts[rung]

    def panel(self) -> list[dict[str, Any]]:
        """The panel (configs, counts, zero-cost scores), created by the first worker."""
        from nas.search.storage import exclusive

        with exclusive(self.settings.storage_url):
            return self._panel()

    def _panel(self) -> list[dict[str, Any]]:
        stored = self.study.user_attrs.get("panel")
        if stored is not None:
            return list(stored)
        from nas.models import build_model

        s = self.settings
        archs = sample_panel(self.space, self.data, s.panel, s.param_limit, s.seed)
        ctx = self.context(s.reference)
        panel = []
        for i, arch in enumerate(archs):
            c = count(arch)
            torch.manual_seed(init_seed(s.seed, i))
            model = build_model(arch).to(self.device)
            panel.append(
                {
                    "arch": arch.to_dict(),
                    "summary": arch.summary(),
                    "params": c.params,
                    "flops": c.flops,
                    "zero_cost": candidate_zero_cost(ctx, model, params=c.params, flops=c.flops),
                }
            )
        self.study.set_user_attr("panel", panel)
        return panel

    def jobs(self) -> list[tuple[int, str]]:
        """Every (candidate, rung label), cheapest rung first, the reference last."""
        order = sorted(self.settings.ladder, key=lambda r: r.images(self.available))
        return [
            (i, r.label)
            for r in (*order, self.settings.reference)
            for i in range(self.settings.panel)
        ]

    # ------------------------------------------------------------------ the worker loop
    def work(self) -> int:
        """Train open jobs until none is left; returns how many this worker trained."""
        from nas.search.runner import fail_running

        try:
            return self._work()
        except KeyboardInterrupt:
            fail_running(self.study, self.started)  # the job goes back to the pool
            raise

    def _work(self) -> int:
        from nas.search.runner import fail_stale
        from nas.training import TrainingFailed

        panel = self.panel()
        trained = 0
        total = len(self.jobs())
        while True:
            fail_stale(self.study)
            trials = self.study.get_trials(deepcopy=False)
            claimed = {_job(t) for t in trials if _claims(t)}
            open_jobs = [j for j in self.jobs() if j not in claimed]
            waiting = [t for t in trials if t.state == TrialState.WAITING]
            if not open_jobs and not waiting:
                return trained
            done = sum(1 for t in trials if t.state == TrialState.COMPLETE and _job(t) is not None)

            objective = functools.partial(
                self._run_job, open_jobs=open_jobs, panel=panel, done=done, total=total
            )
            self.study.optimize(objective, n_trials=1, catch=(TrainingFailed,))
            last = self.study.get_trials(deepcopy=False)[-1]
            if last.state == TrialState.COMPLETE:
                trained += 1

    def _run_job(
        self,
        trial: optuna.trial.Trial,
        *,
        open_jobs: list[tuple[int, str]],
        panel: list[dict[str, Any]],
        done: int,
        total: int,
    ) -> float:
        """The objective of one job's trial: claim a job (or carry a retried one), train.

        A job is claimed under the database's set-up lock: the claim reads every claim made
        before it and writes its own before the next worker reads, so two workers (or
        machines) never claim one job."""
        from nas.search.storage import exclusive

        self.started.add(trial.number)
        job = _job(trial)  # a retry of a job whose worker died carries its job
        if job is None:
            with exclusive(self.settings.storage_url):
                claimed = {
                    _job(t)
                    for t in self.study.get_trials(deepcopy=False)
                    if t.number != trial.number and _claims(t)
                }
                free = [j for j in open_jobs if j not in claimed]
                if not free:
                    raise optuna.TrialPruned("no open job")
                job = free[0]
                trial.set_user_attr("candidate", job[0])
                trial.set_user_attr("rung", job[1])
        rungs = {r.label: r for r in self.settings.rungs}
        return self._train(trial, job, panel, rungs[job[1]], done, total)

    def _train(
        self,
        trial: optuna.trial.Trial,
        job: tuple[int, str],
        panel: list[dict[str, Any]],
        rung: Rung,
        done: int,
        total: int,
    ) -> float:
        from nas.search.slots import worker_id
        from nas.training import TrainingFailed

        candidate, label = job
        entry = panel[candidate]
        ctx = self.context(rung)
        started = time.perf_counter()
        trainer = make_trainer(
            ctx, ArchConfig.from_dict(entry["arch"]), init_seed(self.settings.seed, candidate)
        )
        try:
            result = trainer.fit()
        except TrainingFailed as exc:
            trial.set_user_attr("fail_reason", str(exc))
            trial.set_user_attr("training_failed", True)
            self.say(f"[{done + 1}/{total}] candidate {candidate} at {label}: failed ({exc})")
            raise
        seconds = time.perf_counter() - started
        trial.set_user_attr("accuracy", result.accuracy)
        trial.set_user_attr("seconds", seconds)
        trial.set_user_attr("worker", worker_id())
        trial.set_user_attr("curve", result.curve)
        self.say(
            f"[{done + 1}/{total}] candidate {candidate} ({human(entry['params'])} params) at "
            f"{label}: val acc {result.accuracy:.4f}, {seconds:.1f}s"
        )
        return result.accuracy

    # ------------------------------------------------------------------ the summary
    def summary(self) -> dict[str, Any]:
        """Each rung's agreement with the reference, the zero-cost scores', the pick."""
        return summarize(self.study, self.settings)


def _claims(t: FrozenTrial) -> bool:
    """Whether ``t`` holds its job: done, running, queued as a retry, or failed in training
    (a NaN loss is not retried forever). An interrupted or stale trial gives its job back."""
    if _job(t) is None or t.state == TrialState.PRUNED:
        return False
    if t.state == TrialState.FAIL:
        return bool(t.user_attrs.get("training_failed"))
    return True


def _job(t: FrozenTrial | optuna.trial.Trial) -> tuple[int, str] | None:
    attrs = t.user_attrs
    if "candidate" not in attrs or "rung" not in attrs:
        return None
    return int(attrs["candidate"]), str(attrs["rung"])


def summarize(study: optuna.Study, settings: FidelitySettings) -> dict[str, Any]:
    """The ``--json`` object: ``rungs`` (epochs, subset, kendall_tau, spearman, interval,
    seconds, cost share), ``zero_cost`` (name -> agreement), ``reference``, ``recommended``."""
    accuracy: dict[str, dict[int, float]] = {r.label: {} for r in settings.rungs}
    seconds: dict[str, dict[int, float]] = {r.label: {} for r in settings.rungs}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        job = _job(t)
        if job is not None and job[1] in accuracy:
            accuracy[job[1]][job[0]] = float(t.user_attrs["accuracy"])
            seconds[job[1]][job[0]] = float(t.user_attrs["seconds"])
    ref = settings.reference.label
    ref_acc = accuracy[ref]
    candidates = sorted(ref_acc)
    ref_seconds = sum(seconds[ref].values())
    rungs: list[dict[str, Any]] = []
    for r in settings.ladder:
        common = [i for i in candidates if i in accuracy[r.label]]
        agree = agreement([accuracy[r.label][i] for i in common], [ref_acc[i] for i in common])
        spent = sum(seconds[r.label][i] for i in common)
        ref_spent = sum(seconds[ref][i] for i in common)
        rungs.append(
            {
                "rung": r.label,
                "epochs": r.epochs,
                "subset": r.subset,
                "recipe": r.recipe,
                **agree,
                "seconds": spent,
                "cost_share": spent / ref_spent if ref_spent else None,
                "mean_accuracy": _mean([accuracy[r.label][i] for i in common]),
                "trained": len(accuracy[r.label]),
            }
        )
    panel = study.user_attrs.get("panel") or []
    zero_cost: dict[str, Agreement] = {}
    names = sorted({k for p in panel for k in p.get("zero_cost", {}) if k != "seconds"})
    for name in names:
        values = [panel[i]["zero_cost"].get(name) for i in candidates]
        zero_cost[name] = agreement(
            [math.nan if v is None else float(v) for v in values],
            [ref_acc[i] for i in candidates],
        )
    recommended = next(
        (
            r
            for r in sorted(
                rungs, key=lambda r: r["cost_share"] if r["cost_share"] is not None else math.inf
            )
            if r["kendall_tau"] is not None and r["kendall_tau"] >= settings.target_tau
        ),
        None,
    )
    return {
        "study": study.study_name,
        "panel": len(panel),
        "rungs": rungs,
        "zero_cost": zero_cost,
        "reference": {
            "rung": ref,
            "epochs": settings.reference.epochs,
            "subset": settings.reference.subset,
            "recipe": settings.reference.recipe,
            "trained": len(ref_acc),
            "seconds": ref_seconds,
            "mean_accuracy": _mean(list(ref_acc.values())),
        },
        "target_tau": settings.target_tau,
        "recommended": recommended["rung"] if recommended else None,
        "study_file": _study_lines(recommended, settings) if recommended else None,
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _study_lines(rung: dict[str, Any], settings: FidelitySettings) -> str:
    subset = rung["subset"]
    return (
        "[search]\n"
        f"proxy_epochs = {rung['epochs']}\n"
        f"proxy_subset = {subset if subset is not None else json.dumps('all')}\n"
        f"proxy_val = {settings.val}\n"
        + (f'proxy_recipe = "{rung["recipe"]}"\n' if rung["recipe"] != DEFAULT_PROXY_RECIPE else "")
    )
