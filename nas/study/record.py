"""A trial's record: the user-attribute keys every part of ``nas`` writes and reads, in one
place, and a reader that returns them as typed fields.

The search's objective writes them (see :mod:`nas.search.objective`), ``nas train-winners``
adds the ``full_*`` ones, ``nas fidelity`` writes its jobs' ones; the summary, the report, the
dashboard, the export and the winners read them through :class:`TrialRecord`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the keys are read by light modules (--help imports no Optuna)
    from optuna.trial import FrozenTrial, TrialState

# ------------------------------------------------------------------ keys of a search trial
ARCH = "arch"  #: the config dict nas.build_model takes
PARAMS = "params"  #: parameter count
FLOPS = "flops"  #: FLOPs per image
REJECTED = "rejected"  #: why it was rejected before training (over a limit, not buildable)
NOT_TRAINED = "not_trained"  #: sampled after the study had enough trained trials
TRAINING = "training"  #: admitted to training
SAMPLED_BY = "sampled_by"  #: startup, guided, enqueued or retry (see SAMPLED_BY_VALUES)
PRESET = "preset"  #: the preset an enqueued trial is
RETRY_OF = "retry_of"  #: the trial a retry repeats
RETRIED_AS = "retried_as"  #: the retry of a trial whose worker died
WORKER = "worker"  #: host:pid of the worker that ran it
DEVICE = "device"  #: where it trained
ZERO_COST = "zero_cost"  #: zero-cost scores of the untrained network
CURVE = "curve"  #: validation accuracy after each epoch
ACCURACY = "accuracy"  #: proxy validation accuracy (the last epoch's)
SECONDS = "seconds"  #: wall-clock seconds of the trial
IMAGES_PER_S = "images_per_s"  #: training throughput
RUNGS = "rungs"  #: early-stopping rungs it reached
PROMOTED = "promoted"  #: why it went on at its last rung
STOPPED_EARLY = "stopped_early"  #: why it was stopped early
STOPPED_AT_EPOCH = "stopped_at_epoch"  #: the rung it was stopped at
FAIL_REASON = "fail_reason"  #: why it failed
# ------------------------------------------------------------------ added by train-winners
FULL_VAL_ACCURACY = "full_val_accuracy"
FULL_ACCURACY = "full_accuracy"  #: test accuracy (reported, never used to choose)
FULL_EPOCHS = "full_epochs"
FULL_CURVE = "full_curve"
FULL_VAL_IMAGES = "full_val_images"
FULL_SECONDS = "full_seconds"
FULL_RECIPE = "full_recipe"
FULL_DEVICE = "full_device"
CHECKPOINT = "checkpoint"
WEIGHTS = "weights"
# ------------------------------------------------------------------ a fidelity job
CANDIDATE = "candidate"  #: the panel candidate a job trains
RUNG = "rung"  #: the rung label it trains at
TRAINING_FAILED = "training_failed"  #: failed in training (not retried)
# ------------------------------------------------------------------ study attributes
PROXY_FIDELITY = "proxy_fidelity"  #: Kendall's tau of proxy vs full accuracy (train-winners)
SEARCH_SETTINGS = "nas_settings"  #: a search study's recorded settings
FIDELITY_SETTINGS = "fidelity_settings"  #: a fidelity study's recorded settings
PANEL = "panel"  #: a fidelity study's panel (configs, counts, zero-cost scores)
PANEL_SCORES = "panel_zero_cost_version"  #: the zero-cost code version that scored the panel

#: How a trial's candidate was chosen.
SAMPLED_BY_VALUES = ("startup", "guided", "enqueued", "retry")


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class TrialRecord:
    """The typed view of a trial's user attributes (None where a key is absent)."""

    number: int
    state: TrialState
    arch: dict[str, Any] | None
    params: int | None
    flops: int | None
    accuracy: float | None
    curve: tuple[float, ...]
    seconds: float | None
    rejected: str | None
    stopped_early: str | None
    stopped_at_epoch: int | None
    fail_reason: str | None
    sampled_by: str | None
    full_val_accuracy: float | None
    full_accuracy: float | None
    attrs: dict[str, Any]

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        """Read ``trial``'s record."""
        a = trial.user_attrs
        arch = a.get(ARCH)
        return cls(
            number=trial.number,
            state=trial.state,
            arch=arch if isinstance(arch, dict) else None,
            params=_int(a.get(PARAMS)),
            flops=_int(a.get(FLOPS)),
            accuracy=_float(a.get(ACCURACY)),
            curve=tuple(float(v) for v in a.get(CURVE) or ()),
            seconds=_float(a.get(SECONDS)),
            rejected=a.get(REJECTED),
            stopped_early=a.get(STOPPED_EARLY),
            stopped_at_epoch=_int(a.get(STOPPED_AT_EPOCH)),
            fail_reason=a.get(FAIL_REASON),
            sampled_by=a.get(SAMPLED_BY),
            full_val_accuracy=_float(a.get(FULL_VAL_ACCURACY)),
            full_accuracy=_float(a.get(FULL_ACCURACY)),
            attrs=dict(a),
        )

    @property
    def is_rejected(self) -> bool:
        """Rejected before training (over a limit, or not buildable)."""
        return self.rejected is not None

    @property
    def is_stopped(self) -> bool:
        """Trained for some epochs, then stopped early as hopeless."""
        return self.state.name == "PRUNED" and self.stopped_early is not None

    @property
    def is_trained(self) -> bool:
        """Counts towards ``--trials``: trained to the end, or stopped early."""
        return self.state.name == "COMPLETE" or self.is_stopped

    def cost(self, key: str) -> int | None:
        """The second objective's value (``params`` or ``flops``)."""
        return self.params if key == PARAMS else self.flops
