"""The budget check: one verdict on whether a candidate fits the parameter and FLOPs limits.

A search's objective, ``nas sample``, ``--enqueue-presets``, a fidelity panel and the check
that a limit is not below the space's cheapest candidate all ask :meth:`Budget.check`, so
the rule is written once: parameters are counted first (on the meta device, about a
millisecond); only a candidate within the parameter limit has its FLOPs counted (an fvcore
trace, tens of milliseconds), and only when there is a FLOPs limit (or ``flops=True``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.config import ArchConfig
from nas.counting import count
from nas.errors import ConfigError, NasError
from nas.units import human, over_limit

if TYPE_CHECKING:
    from nas.data import ImageData
    from nas.space import SearchSpace

#: How each limit is named in a rejection reason and in ``rejected_by``.
LIMIT_NAMES = {"params": "params", "flops": "FLOPs"}


@dataclass(frozen=True)
class Verdict:
    """Whether a candidate fits, and why not.

    Attributes:
        params: its parameter count.
        flops: its FLOPs per image (None: not counted, e.g. rejected on parameters).
        violations: how far over each checked limit it is, by limit (``params``, ``flops``;
            > 0: over), the FLOPs one in parameter-limit units ((flops - limit) / limit *
            param_limit), so that NSGA-II's sum of violations weighs both limits alike.
        rejected_by: the limit that rejected it (``params`` or ``flops``; None: it fits).
        reason: the rejection reason, e.g. ``6.10M params > limit 5.00M`` (None: it fits).
    """

    params: int
    flops: int | None = None
    violations: dict[str, float] = field(default_factory=dict)
    rejected_by: str | None = None
    reason: str | None = None

    @property
    def fits(self) -> bool:
        return self.rejected_by is None


@dataclass(frozen=True)
class Budget:
    """A parameter limit and an optional FLOPs limit (per image)."""

    param_limit: int | None = None
    flops_limit: int | None = None

    def judge(self, params: int, flops: int | None = None) -> Verdict:
        """The verdict for counts already known (``flops`` may be None when the candidate is
        over the parameter limit or there is no FLOPs limit)."""
        violations: dict[str, float] = {}
        if self.param_limit is not None:
            violations["params"] = float(params - self.param_limit)
            if params > self.param_limit:
                reason = over_limit(params, self.param_limit, LIMIT_NAMES["params"])
                return Verdict(params, flops, violations, "params", reason)
        if self.flops_limit is None:
            return Verdict(params, flops, violations)
        if flops is None:
            raise ValueError("a FLOPs limit needs the candidate's FLOPs")
        scale = self.param_limit or self.flops_limit
        violations["flops"] = (flops - self.flops_limit) / self.flops_limit * scale
        if flops > self.flops_limit:
            reason = over_limit(flops, self.flops_limit, LIMIT_NAMES["flops"])
            return Verdict(params, flops, violations, "flops", reason)
        return Verdict(params, flops, violations)

    def check(self, arch: ArchConfig, *, flops: bool = False) -> Verdict:
        """The verdict on ``arch``. FLOPs are counted when there is a FLOPs limit or
        ``flops`` is True, and only for a candidate within the parameter limit."""
        params = count(arch, flops=False).params
        verdict = self.judge(params) if self.flops_limit is None else self.on_params(params)
        if not verdict.fits or (self.flops_limit is None and not flops):
            return verdict
        n_flops = count(arch).flops
        assert n_flops is not None
        return self.judge(params, n_flops)

    def on_params(self, params: int) -> Verdict:
        """The verdict on the parameter limit alone, before FLOPs are counted: a candidate it
        rejects never needs them."""
        return Budget(self.param_limit).judge(params)

    def check_reachable(self, space: SearchSpace, data: ImageData) -> None:
        """Refuse limits below the space's cheapest candidate, in one line (parameters
        always; FLOPs when there is a FLOPs limit).

        Raises:
            NasError: naming the limit, the cheapest candidate and its count.
        """
        for key, limit in (("params", self.param_limit), ("flops", self.flops_limit)):
            if limit is None:
                continue
            cheapest, summary = cheapest_candidate(space, data, flops=key == "flops")
            if cheapest > limit:
                flag = "--param-limit" if key == "params" else "--flops-limit"
                what = "limit" if key == "params" else "FLOPs limit"
                adjective = "smallest" if key == "params" else "cheapest"
                raise NasError(
                    f"the {what} {human(limit)} is below the {adjective} candidate of space "
                    f"{space.name!r} ({human(cheapest)} {LIMIT_NAMES[key]}: {summary}); "
                    f"raise {flag} or use a smaller space"
                )


class _MinimalTrial:
    """A stand-in trial that answers every suggestion with its cheapest value, except the
    categorical ones named in ``choices`` (used to find the space's cheapest candidate)."""

    def __init__(self, choices: dict[str, Any]) -> None:
        self.choices = choices

    def suggest_categorical(self, name: str, options: list[Any]) -> Any:
        if name in self.choices:
            return self.choices[name]
        numeric = [o for o in options if isinstance(o, int | float) and not isinstance(o, bool)]
        if name == "reduction" and numeric:
            return max(numeric)
        return min(numeric) if len(numeric) == len(options) else options[0]

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return high if name == "reduction" else low

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return low


def cheapest_candidate(
    space: SearchSpace, data: ImageData, *, flops: bool = False
) -> tuple[int, str]:
    """Parameters (``flops``: FLOPs) and summary of the cheapest candidate of ``space``
    (numeric dimensions at their cheapest, every combination of block, shortcut, attention
    type and placement)."""
    dims = {
        "block": space.backbone["block"].values(),
        "shortcut": space.backbone["shortcut"].values(),
        "attention": space.attention["type"].values(),
        "placement": space.attention["placement"].values(),
    }
    best: tuple[int, str] | None = None
    for combo in itertools.product(*dims.values()):
        trial = _MinimalTrial(dict(zip(dims, combo, strict=True)))
        try:
            arch = space.suggest(
                trial,  # type: ignore[arg-type]
                in_channels=data.in_channels,
                input_size=data.input_size,
                num_classes=data.num_classes,
            )
        except ConfigError:
            continue
        counts = count(arch, flops=flops)
        cost = counts.flops if flops and counts.flops is not None else counts.params
        if best is None or cost < best[0]:
            best = (cost, arch.summary())
    if best is None:
        raise NasError(f"no candidate of space {space.name!r} can be built")
    return best
