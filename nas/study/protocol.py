"""A study's protocol: the settings it records when created and gives back when resumed.

Search and fidelity studies record their pinned and kept settings as a study user attribute
(``nas_settings``, ``fidelity_settings``). A run resolves its effective settings against that
record (:func:`nas.settings.resolve`: flag > study file > record > default), and the study is
created, or its record completed and updated, under the database's set-up lock, so that
workers started together record once and every later worker reads the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from nas.settings import Resolved, recorded, resolve
from nas.study.address import StudyAddress
from nas.study.record import StudyRecord


@dataclass(frozen=True)
class SettingsSource:
    """What a run was given: the flags typed and the study file's values.

    Attributes:
        cls: the settings dataclass.
        key: the study user attribute that holds the record.
        flags: declared settings given on the command line.
        file: declared settings given by the study file.
    """

    cls: type[Any]
    key: str
    flags: Mapping[str, Any] = field(default_factory=dict)
    file: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self, record: Mapping[str, Any] | None, study: str) -> Resolved:
        """The effective settings against ``record`` (None: a new study)."""
        return resolve(
            self.cls, flags=self.flags, file=self.file, record=record, study=f"study {study!r}"
        )

    def peek(self, address: StudyAddress) -> Resolved:
        """The effective settings against the study's record as it is now, creating nothing
        (``--show-settings``, and the settings a run prepares its data with)."""
        record = address.peek_attr(self.key)
        return self.resolve(record if isinstance(record, dict) else None, address.name)


def write_record(
    study: optuna.Study, key: str, resolved: Resolved, *, extra: Mapping[str, Any] | None = None
) -> None:
    """Record ``resolved``'s settings on ``study``: everything on a new study; on an existing
    one, the settings its record lacks (older versions recorded fewer) and the kept settings
    this run gave anew; ``extra`` (e.g. a protocol version) is recorded with a new study.
    Call under the set-up lock."""
    record = StudyRecord(study)
    before = record.get(key)
    now = recorded(resolved.settings)
    if not isinstance(before, dict):
        record.set(key, {**now, **(extra or {})})
        return
    update = {k: v for k, v in now.items() if k not in before or k in resolved.replaced}
    if update:
        record.set(key, {**before, **update})
