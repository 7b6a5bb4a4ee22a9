"""Loading or creating a study at its address: once, for its objectives, quietly."""

from __future__ import annotations

import re
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
    with pytest.raises(
        StorageError, match=r"^cannot parse storage URL 'sqlite:x\.db'; use e\.g\. sqlite:///"
    ):
        StudyAddress.of("sqlite:x.db", "s")  # a URL gone wrong is no path
    with pytest.raises(StorageError, match=re.escape(f"give sqlite:///{Path.home()}/x.db")):
        StudyAddress.of("~/x.db", "s")
    with pytest.raises(StorageError, match=r"the storage URL is empty \(an unset variable\?\)"):
        StudyAddress.of("", "s")
    assert StudyAddress.of(None, "s").url == "sqlite:///studies/s.db"


def test_a_study_on_a_read_only_disk_can_be_read(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Report and export only read: they open an existing SQLite study as it is, without the
    set-up lock's file or a writable folder (an archive, a read-only mount), while a writer
    is told the folder cannot be written."""
    import pytest

    from nas.errors import StorageError
    from nas.study import storage

    address = StudyAddress.of(f"sqlite:///{tmp_path / 's.db'}", "s")
    with address.locked_storage() as opened:
        load_or_create(opened, "s", ("accuracy", "params"), "k")
    (tmp_path / "s.db.lock").unlink()
    real_access = storage.os.access
    monkeypatch.setattr(
        storage.os, "access", lambda p, mode: mode != storage.os.W_OK and real_access(p, mode)
    )
    read = address.open(read_only=True)
    assert [s.study_name for s in optuna.get_all_study_summaries(read)] == ["s"]
    assert not (tmp_path / "s.db.lock").exists()
    with pytest.raises(StorageError, match="cannot be written"):
        address.open(must_exist=True)
    with pytest.raises(StorageError, match="does not exist"):
        StudyAddress.of(f"sqlite:///{tmp_path / 'none.db'}", "s").open(read_only=True)


def test_a_study_of_the_other_kind_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """``nas fidelity`` named to a search study once failed hundreds of trials into it, in a
    loop; ``nas search`` named to a fidelity study is refused by name too."""
    import pytest

    from nas.errors import StorageError
    from nas.study.record import FIDELITY_SETTINGS, SEARCH_SETTINGS
    from tests.conftest import run_nas

    url = f"sqlite:///{tmp_path / 's.db'}"
    address = StudyAddress.of(url, "searched")
    with address.locked_storage() as storage:
        study, _, _ = load_or_create(storage, "searched", ("accuracy", "params"), SEARCH_SETTINGS)
        StudyRecord(study).set(SEARCH_SETTINGS, {"seed": 0})
    out = run_nas(
        "fidelity", "--storage", url, "--study", "searched", "--dataset", "fake",
        "--device", "cpu", "--panel", "3", "--ladder", "1x64", "--reference", "2x64",
    )  # fmt: skip
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        "nas: error: study 'searched' is a search study (nas search made it); choose another "
        "--study"
    )
    assert optuna.load_study(study_name="searched", storage=url).trials == []
    with address.locked_storage() as storage:
        fidelity = optuna.create_study(study_name="fid", storage=storage)
        StudyRecord(fidelity).set(FIDELITY_SETTINGS, {"seed": 0})
        with pytest.raises(StorageError, match=r"^study 'fid' is a fidelity study \(nas fid"):
            load_or_create(storage, "fid", ("accuracy", "params"), SEARCH_SETTINGS)


def test_a_driver_that_is_not_installed_and_a_refused_privilege_are_one_line(
    tmp_path: Path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    """Optuna's docs write postgresql+psycopg2://, whose driver nas does not install: said
    when the address is read, not as a traceback from the set-up lock. A role without
    privileges on Optuna's tables gets the database's reason, not Optuna's guess."""
    import importlib.util

    import pytest
    import sqlalchemy

    from nas.errors import StorageError
    from nas.study import storage

    if importlib.util.find_spec("psycopg2") is None:
        with pytest.raises(StorageError) as info:
            StudyAddress.of("postgresql+psycopg2://u@127.0.0.1:1/x", "s")
        assert str(info.value) == (
            "the database driver for 'postgresql+psycopg2' is not installed (No module named "
            "'psycopg2'); install it, or name one that is (nas installs psycopg: "
            "postgresql+psycopg://...)"
        )

    def refused(*args: object, **kwargs: object) -> None:
        denied = Exception("permission denied for table version_info")
        try:
            raise sqlalchemy.exc.ProgrammingError("SELECT", {}, denied)
        except sqlalchemy.exc.ProgrammingError as exc:
            raise optuna.exceptions.StorageInternalError(
                "An exception is raised during the commit. This typically happens due to "
                "invalid data in the commit, e.g. exceeding max length."
            ) from exc

    monkeypatch.setattr(storage, "_with_heartbeats", refused)
    with pytest.raises(StorageError) as info:
        StudyAddress.of(f"sqlite:///{tmp_path}/p.db", "s").open()
    assert str(info.value).endswith(": permission denied for table version_info")
