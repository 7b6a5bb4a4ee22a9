"""Proxy image counts against the data (:meth:`nas.settings.Resolved.fit` with
:func:`nas.data.splits.split_room`): refused when given, reduced with
one line when a default, kept when recorded; and the same rules through ``nas search``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest

from nas.data.splits import split_room
from nas.errors import NasError
from nas.search.settings import SearchSettings
from nas.settings import Resolved, resolve
from tests.conftest import make_image_folder, run_nas, settings_rows

#: 600 training images: a validation split of 60, 540 outside it.
N_TRAIN = 600


def resolved(
    flags: dict[str, Any] | None = None,
    file: dict[str, Any] | None = None,
    record: dict[str, Any] | None = None,
) -> Resolved:
    return resolve(
        SearchSettings, flags=flags or {}, file=file or {}, record=record, study="study 't'"
    )


def fit(settings: Resolved, n_train: int) -> tuple[Resolved, list[str]]:
    """What a search does: the counts fitted to what ``n_train`` training images allow."""
    return settings.fit(split_room(n_train, settings.settings.val_fraction))


@pytest.mark.parametrize(
    ("flags", "file", "message"),
    [
        (
            {"proxy_val": 5000},
            {},
            "--proxy-val 5000: the validation split of this data set holds 60 images; give at "
            "most 60 or 'all'",
        ),
        (
            {"proxy_val": 60, "proxy_subset": 1000},
            {},
            "--proxy-subset 1000: this data set has 540 training images outside its validation "
            "split; give at most 540 or 'all'",
        ),
        (
            {},
            {"proxy_val": 61, "proxy_subset": 100},
            "proxy_val = 61 in the study file: the validation split of this data set holds 60 "
            "images; give at most 60 or 'all'",
        ),
    ],
)
def test_a_given_count_the_data_cannot_meet_is_refused(
    flags: dict[str, Any], file: dict[str, Any], message: str
) -> None:
    with pytest.raises(NasError) as info:
        fit(resolved(flags, file), N_TRAIN)
    assert str(info.value) == message


def test_a_default_count_is_reduced_with_one_line_each() -> None:
    fitted, notes = fit(resolved(), N_TRAIN)
    s = fitted.settings
    assert (s.proxy_subset, s.proxy_val) == (540, 60)
    assert fitted.origins["proxy_val"] == "default"
    assert notes == [
        "--proxy-subset: the default 5,000 is more than the data hold (this data set has 540 "
        "training images outside its validation split); using 540, and the study records it",
        "--proxy-val: the default 2,000 is more than the data hold (the validation split of "
        "this data set holds 60 images); using 60, and the study records it",
    ]


def test_a_recorded_count_is_kept_as_the_study_trained_with_it() -> None:
    """Old studies recorded the default 5000/2000 on data that held fewer, and trained on
    what the data held (the split takes the first images): they resume unchanged, neither
    refused nor re-recorded."""
    record = {"proxy_subset": 300, "proxy_val": 100}
    fitted, notes = fit(resolved(record=record), N_TRAIN)
    assert notes == []
    assert (fitted.settings.proxy_subset, fitted.settings.proxy_val) == (300, 100)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"proxy_subset": 540, "proxy_val": 60}, (540, 60)),  # exactly what the data hold
        ({"proxy_subset": None, "proxy_val": None}, (None, None)),  # 'all'
        ({"proxy_subset": 32, "proxy_val": 8}, (32, 8)),
    ],
)
def test_counts_the_data_meet_are_kept(
    flags: dict[str, Any], expected: tuple[int | None, int | None]
) -> None:
    fitted, notes = fit(resolved(flags), N_TRAIN)
    s = fitted.settings
    assert (s.proxy_subset, s.proxy_val) == expected
    assert notes == []


def search(space: Path, data: Path, db: Path, *extra: str) -> list[str]:
    return [
        "search", "--space", str(space), "--dataset", "imagefolder", "--data-dir", str(data),
        "--trials", "1", "--proxy-epochs", "1", "--storage", f"sqlite:///{db}", "--study", "t",
        "--device", "cpu", "--quiet", *extra,
    ]  # fmt: skip


def test_search_refuses_a_given_count_before_creating_the_study(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    out = run_nas(*search(tiny_space, image_folder, db, "--proxy-val", "5000"))
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if not line.startswith("decoding ")]
    assert lines == [
        "nas: error: --proxy-val 5000: the validation split of this data set holds 12 images; "
        "give at most 12 or 'all'"
    ]
    assert not db.exists()


def test_show_settings_shows_the_counts_the_run_will_take(
    tiny_space: Path, image_folder: Path, tmp_path: Path
) -> None:
    """--show-settings fits the defaults to the data as the run does (120 training images:
    12 validation, 108 outside), says so, and refuses a given count the same way."""
    db = tmp_path / "s.db"
    flags = search(tiny_space, image_folder, db, "--show-settings")
    out = run_nas(*flags)
    assert out.returncode == 0, out.stderr
    rows = settings_rows(out.stdout)
    assert rows["--proxy-subset"] == ("108", "default")
    assert rows["--proxy-val"] == ("12", "default")
    said = " ".join(out.stdout.split())
    assert "--proxy-val: the default 2,000 is more than the data hold" in said
    refused = run_nas(*flags, "--proxy-val", "5000")
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[-1].startswith("nas: error: --proxy-val 5000: the ")
    assert not db.exists()


@pytest.mark.slow
def test_search_reduces_the_defaults_records_them_and_warns_without_a_test_split(
    tiny_space: Path, tmp_path: Path
) -> None:
    data = make_image_folder(tmp_path / "images", classes=2, per_class=20)
    shutil.rmtree(data / "test")
    db = tmp_path / "s.db"
    out = run_nas(*search(tiny_space, data, db, "--proxy-batch-size", "16"), timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert (
        "--proxy-val: the default 2,000 is more than the data hold (the validation split of "
        "this data set holds 4 images); using 4, and the study records it"
    ) in lines
    assert any(line.startswith("--proxy-subset: the default 5,000 ") for line in lines)
    warnings = [line for line in lines if "no test split" in line]
    assert warnings == [
        f"warning: {data} has no test split (DIR/test/<class>/* or DIR/val/<class>/*): the "
        "search does not need one, but nas train-winners scores the winners on it and refuses "
        "to start without it"
    ]
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{db}")
    record = study.user_attrs["nas_settings"]
    assert (record["proxy_subset"], record["proxy_val"]) == (36, 4)
    # resumed: the recorded (reduced) counts are taken without a word, and no second warning
    again = run_nas(*search(tiny_space, data, db, "--trials", "2"), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "the default" not in again.stderr and "no test split" not in again.stderr
