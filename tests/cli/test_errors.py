"""Mistakes a new user makes, each answered in one line that says what is wrong and where,
through the real command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_nas


def error_lines(stderr: str) -> list[str]:
    """stderr without the lines that only narrate (decoding images, fake-data notice)."""
    return [
        line
        for line in stderr.splitlines()
        if line and not line.startswith(("decoding ", "warning: --dataset fake"))
    ]


STUDY = ("--storage", "foo://bar", "--study", "w")


@pytest.mark.parametrize(
    "args",
    [
        ("search", "--dataset", "fake", *STUDY),
        ("fidelity", "--dataset", "fake", *STUDY),
        ("train-winners", *STUDY, "--top-k", "1", "--epochs", "1"),
        ("export", *STUDY, "--best", "--out", "best.json"),
        ("report", *STUDY, "--out", "report.html"),
        ("dashboard", "--storage", "foo://bar", "--port", "0"),
    ],
    ids=lambda args: args[0],
)
def test_a_storage_url_of_an_unknown_kind_is_one_line_in_every_command(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    out = run_nas(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert error_lines(out.stderr) == [
        "nas: error: unknown database kind 'foo' in storage URL 'foo://bar'; use e.g. "
        "sqlite:///studies/demo.db or postgresql+psycopg://user:password@host:5432/dbname"
    ]
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_database_where_no_file_can_be_made_is_one_line(tmp_path: Path) -> None:
    out = run_nas("search", "--dataset", "fake", "--storage", "sqlite:////proc/x.db", cwd=tmp_path)
    assert out.returncode == 2
    assert error_lines(out.stderr) == [
        "nas: error: cannot create the lock file /proc/x.db.lock beside the study database "
        "(No such file or directory); give --storage a folder that can hold files"
    ]


def test_a_malformed_json_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"arch": {"stem_width": 8,\n  "block": "basic"\n  "stages": []}}\n')
    out = run_nas("count", "--config", str(bad))
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"nas: error: {bad} is not valid JSON: Expecting ',' delimiter (line 3, column 3)"
    ]


def test_a_data_dir_that_is_a_file_says_so(tmp_path: Path, tiny_space: Path) -> None:
    afile = tmp_path / "cifar10.tar.gz"
    afile.write_bytes(b"not a folder")
    out = run_nas(
        "search", "--space", str(tiny_space), "--dataset", "imagefolder", "--data-dir",
        str(afile), "--storage", f"sqlite:///{tmp_path}/s.db", "--device", "cpu",
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"nas: error: data folder {afile} (--data-dir) is a file, not a folder"
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[search]\ntrials = 2\nproxy_epochs = = 1\n", "Invalid value (at line 3, column 16)"),
        # a stray carriage return is not a line break to TOML (nor to most editors)
        (
            "[search]\r# a note\ntrials = = 2\n",
            "Expected newline or end of document after a statement (at line 1, column 9)",
        ),
        # an array never closed: the ']' is missing after its last value, not where the
        # parser noticed (the next line)
        (
            '[search]\nobjectives = ["accuracy", "params"\ntrials = 2\n',
            "Unclosed array (at line 2, column 35: no ']' after the last value)",
        ),
    ],
    ids=["value", "carriage-return", "unclosed-array"],
)
def test_a_toml_syntax_error_names_the_line_of_the_mistake(
    text: str, where: str, tmp_path: Path
) -> None:
    study = tmp_path / "study.toml"
    study.write_bytes(text.encode())
    out = run_nas("search", str(study), "--show-settings")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"nas: error: {study} is not valid TOML: {where}"]
