"""``nas fidelity``: train a panel of candidates at every rung of a ladder of proxy
fidelities and at a reference fidelity, and measure how well each rung (and each zero-cost
score) ranks the panel the way the reference does.

Everything lives in a study database, so an interrupted run resumes, several workers (and
machines, on PostgreSQL) share the jobs, and optuna-dashboard shows them. The study's user
attributes hold the settings and the panel (configs, counts, zero-cost scores); each job
(candidate x rung) is one trial with user attributes ``candidate``, ``rung``, ``accuracy``,
``seconds``; its value is the validation accuracy. A worker claims the first open job under
the database's set-up lock (:func:`nas.study.storage.exclusive`), so no job is claimed twice.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from nas.budget import Budget
from nas.config import ArchConfig
from nas.counting import count
from nas.data import ImageData, validation_split
from nas.errors import ConfigError, NasError, StorageError
from nas.fidelity.ladder import Rung
from nas.fidelity.settings import RECORD_KEY, FidelitySettings, default_study_name
from nas.fidelity.summary import summarize
from nas.objectives import METRICS
from nas.proxy.context import (
    ProxySpec,
    TrainingContext,
    candidate_zero_cost,
    init_seed,
    make_trainer,
    proxy_context,
)
from nas.proxy.zero_cost import ZERO_COST_VERSION
from nas.settings import DEFAULT, GIVEN, PYTHON, Resolved, SettingsSource, given_in_python
from nas.space import SearchSpace
from nas.study.address import StudyAddress, check_kind
from nas.study.cleanup import INTERRUPTED, fail_running, fail_stale
from nas.study.record import StudyRecord, TrialRecord, TrialWriter
from nas.study.storage import worker_id
from nas.units import human


def _counts(arch: ArchConfig) -> dict[str, int | None]:
    c = count(arch)
    return {"params": c.params, "flops": c.flops}


def fidelity_address(source: SettingsSource) -> StudyAddress:
    """Where the study a command line names lives (``--storage``, ``--study``, or the name
    derived from the space and data set given or defaulted), read without the record and
    without checks across settings (a ladder and reference may only fit the record's)."""
    defaults = FidelitySettings()

    def given(name: str) -> Any:
        return source.flags.get(name, source.file.get(name, getattr(defaults, name)))

    name = given("study") or default_study_name(given("space"), given("dataset"))
    return StudyAddress.of(given("storage"), name)


def sample_panel(
    space: SearchSpace, data: ImageData, n: int, limits: dict[str, float], seed: int
) -> list[ArchConfig]:
    """``n`` distinct candidates of ``space`` that fit ``limits``, sampled at random with
    ``seed`` (the same panel for every worker)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed % 2**32))
    panel: list[ArchConfig] = []
    seen: set[str] = set()
    budget = Budget(limits)
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
        if key in seen or not budget.check(arch).fits:
            continue
        seen.add(key)
        panel.append(arch)
        if len(panel) == n:
            return panel
    under = ", ".join(f"{human(v)} {METRICS[k].label}" for k, v in limits.items())
    raise NasError(
        f"found only {len(panel)} distinct candidates of space {space.name!r} under "
        f"{under}; lower --panel or raise the limit"
    )


Say = Callable[[str], None]


def fit_to_data(resolved: Resolved, n_train: int) -> tuple[Resolved, list[str]]:
    """``resolved`` fitted to data of ``n_train`` training images, as a search fits its
    proxy (:meth:`nas.settings.Resolved.fit`: a given ``--val`` the validation split cannot
    hold is refused, the default reduced); a rung given now whose images exceed the
    training images outside the validation split is refused, since it would train on all
    of them, the same as ``EPOCHSxall``, and compare a fidelity with itself.

    Raises:
        NasError: in one line, naming the rung or the setting and what the data hold.
    """
    from nas.data.splits import split_room

    room = split_room(n_train)
    fitted, notes = resolved.fit(room)
    available, holds = room["train"]
    for name in ("ladder", "reference"):
        value = getattr(fitted.settings, name)
        flag = fitted.names.get(name, f"--{name}")
        over = [
            r
            for r in (value if isinstance(value, tuple) else (value,))
            if r.subset and r.subset > available
        ]
        if over and fitted.origins.get(name) in GIVEN:
            raise NasError(
                f"{flag} rung {over[0].label}: {holds}; give at most {available} images per "
                f"epoch, or {over[0].epochs}xall"
            )
        if over and fitted.origins.get(name) == DEFAULT:  # recorded ones were trained so
            notes.append(
                f"note: the default {flag} rungs {', '.join(r.label for r in over)} train on "
                f"all {available:,} images ({holds}), as their EPOCHSxall would; give {flag} "
                "to rank rungs this data set can tell apart"
            )
    return fitted, notes


class FidelityRun:
    """One worker of a fidelity study: prepares the panel, trains open jobs, summarises."""

    def __init__(self, source: SettingsSource | FidelitySettings, say: Say) -> None:
        """Open (creating if needed) the fidelity study: settings resolved against its record
        (an explicit conflict with a pinned setting is refused in one line), the space and
        the data loaded, the study created and its settings recorded under the set-up lock.

        Args:
            source: what the command line gave, or settings built in Python (every field
                counts as given).
        """
        from nas.data import load_dataset
        from nas.space import load_space
        from nas.training import resolve_device

        if isinstance(source, FidelitySettings):
            source = SettingsSource(
                FidelitySettings, RECORD_KEY, flags=given_in_python(source), given_as=PYTHON
            )
        self.address = fidelity_address(source)
        peeked = source.peek(self.address)
        settings: FidelitySettings = peeked.settings
        self.space = load_space(settings.space)
        self.data = load_dataset(settings.dataset, settings.data_dir)
        fit_to_data(peeked, len(self.data.train_y))  # refused before the study is made
        with self.address.locked_storage() as storage:
            self.study = optuna.create_study(
                study_name=self.address.name,
                storage=storage,
                direction="maximize",
                load_if_exists=True,
            )
            check_kind(self.study, RECORD_KEY)  # nothing written to a search study
            if len(self.study.directions) != 1:
                raise StorageError(
                    f"study {self.address.name!r} has {len(self.study.directions)} "
                    "objectives, not a fidelity study's one; choose another --study"
                )
            record = StudyRecord(self.study).get(RECORD_KEY)
            resolved = source.resolve(
                record if isinstance(record, dict) else None, self.address.name
            )
            self.resolved, notes = fit_to_data(resolved, len(self.data.train_y))
            StudyRecord(self.study).record_settings(
                RECORD_KEY, self.resolved.to_record(), self.resolved.replaced
            )
        self.settings: FidelitySettings = self.resolved.settings
        if self.settings != settings:  # recorded by a worker that started meanwhile
            self.space = load_space(self.settings.space)
            self.data = load_dataset(self.settings.dataset, self.settings.data_dir)
        self.say = say
        for note in notes:
            say(note)
        self.device = resolve_device(self.settings.device)
        self.available = len(validation_split(len(self.data.train_y)).train)
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
        """The panel (configs, counts, zero-cost scores), created by the first worker; scores
        stored by another version of the zero-cost code are computed again."""
        with self.address.lock():
            return self._panel()

    def _panel(self) -> list[dict[str, Any]]:
        record = StudyRecord(self.study)
        scored = record.panel(ZERO_COST_VERSION)
        if scored is not None:
            return scored
        stored = record.panel_any or None
        s = self.settings
        if stored is None:
            archs = sample_panel(self.space, self.data, s.panel, s.limits, s.seed)
            stored = [{"arch": a.to_dict(), "summary": a.summary(), **_counts(a)} for a in archs]
        else:
            self.say(f"computing the panel's zero-cost scores again (version {ZERO_COST_VERSION})")
        ctx = self.context(s.reference)
        panel = [
            {**entry, "zero_cost": self._zero_cost(ctx, i, entry)} for i, entry in enumerate(stored)
        ]
        record.set_panel(panel, ZERO_COST_VERSION)
        return panel

    def _zero_cost(
        self, ctx: TrainingContext, i: int, entry: dict[str, Any]
    ) -> dict[str, float | None]:
        """Zero-cost scores of candidate ``i`` with the initial weights its jobs start from."""
        from nas.models import build_model

        torch.manual_seed(init_seed(self.settings.seed, i))
        model = build_model(entry["arch"]).to(self.device)
        return candidate_zero_cost(ctx, model, params=entry["params"], flops=entry["flops"])

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

        try:
            return self._work()
        except KeyboardInterrupt as exc:
            reason = INTERRUPTED[getattr(exc, "signal", "SIGINT")]
            fail_running(self.study, self.started, reason)  # the job goes back to the pool
            raise

    def _work(self) -> int:
        from nas.training import TrainingFailed

        panel = self.panel()
        trained = 0
        while True:
            fail_stale(self.study)
            trials = self.study.get_trials(deepcopy=False)
            claimed = {TrialRecord(t).job for t in trials if _claims(t)}
            open_jobs = [j for j in self.jobs() if j not in claimed]
            waiting = [t for t in trials if t.state == TrialState.WAITING]
            if not open_jobs and not waiting:
                return trained
            objective = functools.partial(self._run_job, open_jobs=open_jobs, panel=panel)
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
    ) -> float:
        """The objective of one job's trial: claim a job (or carry a retried one), train.

        A job is claimed under the database's set-up lock: the claim reads every claim made
        before it and writes its own before the next worker reads, so two workers (or
        machines) never claim one job."""
        self.started.add(trial.number)
        writer = TrialWriter(trial)
        writer.started(worker_id())  # named in the reason if this worker dies
        job = writer.claimed  # a retry of a job whose worker died carries its job
        if job is None:
            with self.address.lock():
                claimed = {
                    TrialRecord(t).job
                    for t in self.study.get_trials(deepcopy=False)
                    if t.number != trial.number and _claims(t)
                }
                free = [j for j in open_jobs if j not in claimed]
                if not free:
                    raise optuna.TrialPruned("no open job")
                job = free[0]
                writer.claim(*job)
        rungs = {r.label: r for r in self.settings.rungs}
        return self._train(trial, job, panel, rungs[job[1]])

    def _train(
        self,
        trial: optuna.trial.Trial,
        job: tuple[int, str],
        panel: list[dict[str, Any]],
        rung: Rung,
    ) -> float:
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
            TrialWriter(trial).failed(str(exc), in_training=True)
            done, total = self.progress()
            self.say(f"[{done}/{total}] candidate {candidate} at {label}: failed ({exc})")
            raise
        seconds = time.perf_counter() - started
        with self.address.lock():  # numbered one after the other, over every worker
            TrialWriter(trial).job_done(result.accuracy, result.curve, seconds, worker_id())
            done, total = self.progress(running=True)
        self.say(
            f"[{done}/{total}] candidate {candidate} ({human(entry['params'])} params) at "
            f"{label}: val acc {result.accuracy:.4f}, {seconds:.1f}s"
        )
        return result.accuracy

    # ------------------------------------------------------------------ the summary
    def progress(self, running: bool = False) -> tuple[int, int]:
        """(jobs done, jobs in all), over every worker (``running``: see :func:`_done`)."""
        return _done(self.study.get_trials(deepcopy=False), running), len(self.jobs())

    def summary(self) -> dict[str, Any]:
        """Each rung's agreement with the reference, the zero-cost scores', the pick."""
        return summarize(self.study, self.settings, self.available)


def _done(trials: list[FrozenTrial], running: bool = False) -> int:
    """How many jobs ``trials`` finished (``running``: counting the running trials that
    have recorded their result and are not told yet)."""

    def done(t: FrozenTrial) -> bool:
        r = TrialRecord(t)
        if r.job is None:
            return False
        told = t.state == TrialState.COMPLETE
        return told or (running and t.state == TrialState.RUNNING and r.accuracy is not None)

    return sum(1 for t in trials if done(t))


def _claims(t: FrozenTrial) -> bool:
    """Whether ``t`` holds its job: done, running, queued as a retry, or failed in training
    (a NaN loss is not retried forever). An interrupted or stale trial gives its job back."""
    r = TrialRecord(t)
    if r.job is None or t.state == TrialState.PRUNED:
        return False
    if t.state == TrialState.FAIL:
        return r.training_failed
    return True
