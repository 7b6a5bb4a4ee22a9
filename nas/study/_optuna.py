"""The one place that touches Optuna's private API.

Optuna 5 has no public way to reach a study's storage, a trial's id, study system attributes,
the cached trial list a sampler reads, the ORM model of trial user attributes (needed to
write results onto a finished trial), the key a genetic sampler stores a trial's generation
under, or NSGA-II's selection and crossover steps. Everything else in ``nas`` calls these
functions (``tests/test_layers.py`` enforces it), so an Optuna upgrade that moves them breaks
one module, and the dependency is bounded to the major version the tests run
(``optuna>=5,<6`` in pyproject.toml). Each name below was checked against Optuna 5.1.0.
(optuna-dashboard's private modules have their own sibling, :mod:`nas.study._dashboard`.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.samplers import NSGAIISampler

#: The version of Optuna every private name in this module was checked against.
CHECKED_AGAINST = "5.1.0"

#: RDBStorage's private call that lists stale trials (retried like its public calls).
STALE_TRIAL_IDS = "_get_stale_trial_ids"


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes (possibly Optuna's caching wrapper)."""
    storage: BaseStorage = study._storage
    return storage


def rdb_of(study: optuna.Study) -> RDBStorage | None:
    """The RDB storage under a study (Optuna wraps it in a cache), or None for another kind."""
    storage = storage_of(study)
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def trial_id(trial: FrozenTrial | optuna.trial.Trial) -> int:
    """A trial's storage id (not its number)."""
    return int(trial._trial_id)


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial | None:
    """Trial ``number`` of ``study`` read afresh from storage (None if there is none)."""
    storage = storage_of(study)
    try:
        tid = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        return storage.get_trial(tid)
    except KeyError:
        return None


def cached_trials(study: optuna.Study, states: Iterable[TrialState]) -> Sequence[FrozenTrial]:
    """The study's trials in ``states`` as samplers read them (shared, cached: do not edit)."""
    trials: Sequence[FrozenTrial] = study._get_trials(
        deepcopy=False,
        states=tuple(states),
        use_cache=True,  # type: ignore[arg-type]
    )
    return trials


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's system attributes."""
    return dict(storage_of(study).get_study_system_attrs(study._study_id))


def set_study_system_attr(study: optuna.Study, key: str, value: Any) -> None:
    """Set a system attribute of the study."""
    storage_of(study).set_study_system_attr(study._study_id, key, value)


def set_trial_system_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Set a system attribute of a (running) trial."""
    storage_of(study).set_trial_system_attr(trial_id(trial), key, value)


def fail_trial(study: optuna.Study, trial: FrozenTrial, attrs: dict[str, Any]) -> None:
    """Write ``attrs`` onto a RUNNING trial and set it FAIL (a trial this process started but
    can no longer finish through Optuna's API)."""
    storage = storage_of(study)
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id(trial), key, value)
    storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)


def set_result_attrs(storage: RDBStorage, tid: int, values: dict[str, Any]) -> None:
    """Write user attributes onto a *finished* trial (Optuna's API refuses to), as one
    transaction on Optuna's own trial-attribute table.

    Raises:
        Exception: what the database raised, after rolling back.
    """
    from optuna.storages._rdb import models

    session = storage.scoped_session()
    try:
        for key, value in values.items():
            row = (
                session.query(models.TrialUserAttributeModel)
                .filter_by(trial_id=tid, key=key)
                .one_or_none()
            )
            if row is None:
                session.add(
                    models.TrialUserAttributeModel(
                        trial_id=tid, key=key, value_json=json.dumps(value)
                    )
                )
            else:
                row.value_json = json.dumps(value)
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.close()


def generation_key(sampler_cls: type[Any]) -> str:
    """The system attribute a genetic sampler stores a trial's generation under: Optuna's
    ``BaseGASampler._get_generation_key``, named after the sampler's own class (a subclass
    gets its own key, ``RejectionAwareNSGAII:generation``). Checked against 5.1.0."""
    key: str = sampler_cls._get_generation_key()
    return key


def nsga2_select(
    sampler: NSGAIISampler, study: optuna.Study, population: list[FrozenTrial]
) -> list[FrozenTrial]:
    """NSGA-II's elitist selection (constrained non-dominated sorting, then crowding
    distance) over ``population``: ``NSGAIISampler._elite_population_selection_strategy``.
    Checked against 5.1.0."""
    parents: list[FrozenTrial] = sampler._elite_population_selection_strategy(study, population)
    return parents


def nsga2_child(
    sampler: NSGAIISampler,
    study: optuna.Study,
    search_space: dict[str, BaseDistribution],
    parents: list[FrozenTrial],
) -> dict[str, Any]:
    """A child of ``parents`` (crossover and mutation): NSGA-II's
    ``_child_generation_strategy``. Checked against 5.1.0."""
    return dict(sampler._child_generation_strategy(study, search_space, parents))
