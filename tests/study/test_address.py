"""Loading or creating a study at its address: once, for its objectives, quietly."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna

from nas.study.address import StudyAddress, load_or_create
from nas.study.record import StudyRecord


def test_a_study_is_created_once_for_its_objectives_and_then_loaded(tmp_path: Path) -> None:
    address = StudyAddress.of(f"sqlite:///{tmp_path / 's.db'}", "s")
    with address.locked_storage() as storage:
        study, created, record = load_or_create(storage, "s", ("accuracy", "latency"), "k")
        assert created and record is None
        assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
        assert study.metric_names == ["val_accuracy", "latency_ms"]
        StudyRecord(study).set("k", {"seed": 3})
    with address.locked_storage() as storage:
        again, created, record = load_or_create(storage, "s", ("accuracy", "latency"), "k")
        assert optuna.get_all_study_names(storage) == ["s"]
    assert not created and record == {"seed": 3}
    assert again.metric_names == ["val_accuracy", "latency_ms"]


def test_creating_a_study_from_python_warns_of_nothing(tmp_path: Path) -> None:
    """``set_metric_names`` is "experimental" in Optuna: a user of ``nas.Search`` (whose
    warnings no command line filters) must not see that warning for every new study."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'w.db'}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_or_create(storage, "w", ("accuracy", "params"), "k")
    assert [str(w.message) for w in caught] == []


def test_a_storage_that_is_no_url_says_what_to_give() -> None:
    """A file path gets its URL; an empty value (an unset shell variable) is refused rather
    than taken for the default file, where a worker meant for a shared database would
    start a study of its own."""
    import pytest

    from nas.errors import StorageError

    with pytest.raises(StorageError) as info:
        StudyAddress.of("/data/runs/s.db", "s")
    assert str(info.value) == (
        "cannot parse storage URL '/data/runs/s.db'; for the file /data/runs/s.db, give "
        "sqlite:////data/runs/s.db"
    )
    with pytest.raises(StorageError, match=r"the storage URL is empty \(an unset variable\?\)"):
        StudyAddress.of("", "s")
    assert StudyAddress.of(None, "s").url == "sqlite:///studies/s.db"
