"""Everything that turns an :class:`~nas.config.ArchConfig` into an ``nn.Module``.

* ``attention/``: the attention modules, one registry;
* ``joins.py``: how their output joins the features;
* ``blocks.py``: residual blocks;
* ``plan.py``: an architecture as a sequence of unit specs, and where attention goes;
* ``network.py``: the one network class and :func:`build_model`.
"""

from __future__ import annotations

from nas.config import PLACEMENT_RULES, stage_slots
from nas.models.attention import ATTENTION, make_attention
from nas.models.blocks import BLOCKS
from nas.models.joins import JOINS
from nas.models.network import Network, build_model
from nas.models.plan import plan

__all__ = [
    "ATTENTION",
    "BLOCKS",
    "JOINS",
    "PLACEMENT_RULES",
    "Network",
    "build_model",
    "make_attention",
    "plan",
    "stage_slots",
]
