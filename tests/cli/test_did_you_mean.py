"""A mistyped flag, subcommand, study-file key, sampler or objective gets one line naming
the closest valid word; errors list only settings a user can set."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.cli.main import main
from nas.errors import NasError
from tests.conftest import ROOT


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        code = main(list(argv))
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serch"], "did you mean search?"),
        (["search", "--trails", "3"], "unknown flag --trails 3; did you mean --trials?"),
        (["search", "--sampler", "tpee"], "did you mean tpe?"),
        (["search", "--objectives", "accuracy,latncy"], "did you mean latency?"),
        (["search", "--dataset", "cifar1O"], "did you mean cifar10?"),
        (["count", "--preset", "resnet20", "--latncy"], "did you mean --latency?"),
        (["export", "--studdy", "s"], "did you mean --study?"),
        (["count", "--prest", "resnet20"], "unknown flag --prest; did you mean --preset?"),
        (["count", "--preset", "resnet-20"], "did you mean resnet20?"),
        (["search", "--objectives", "acuracy"], "must start with accuracy; did you mean accuracy?"),
        (["search", "--objectives", "accuracy,accuracy"], "name accuracy twice"),
    ],
)
def test_mistyped_words_name_the_closest_valid_one(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert expected in _error(capsys, *argv)


def test_a_value_after_a_misspelled_flag_is_not_a_study_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = _error(capsys, "search", "--param-limt", "5M")
    assert "unknown flag --param-limt 5M; did you mean --param-limit?" in err
    assert "study file" not in err and "'nas search --help'" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["search", "--latency-limit", "-2ms"], "latency limit must be positive, got '-2ms'"),
        (["search", "--memory-limit", "-3MB"], "memory limit must be positive, got '-3MB'"),
        (["search", "--param-limit", "-5M"], "parameter limit must be positive, got '-5M'"),
        (["search", "--latency-limit=-2ms"], "latency limit must be positive, got '-2ms'"),
        (["search", "--latency-limit", "--trials", "3"], "--latency-limit: expected one argument"),
        (["search", "--space", "-x.toml"], "'-x.toml' reads as a flag; a value that starts "),
    ],
)
def test_a_value_starting_with_a_dash_is_judged_as_a_value(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    """argparse reads ``-2ms`` as a flag and says only "expected one argument"; the user
    learns what is wrong with the value instead."""
    assert expected in _error(capsys, *argv)


def _file_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> str:
    path = tmp_path / "s.toml"
    path.write_text(text)
    err = capsys.readouterr().err  # drain
    code = main(["search", str(path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_study_file_keys_tables_and_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _file_error(tmp_path, capsys, '[search]\nparam_limt = "5M"\n')
    assert "unknown setting 'param_limt' in [search]; did you mean param_limit?" in err
    err = _file_error(tmp_path, capsys, 'param_limit = "5M"\n')
    assert "outside any table; put it under [search]" in err
    err = _file_error(tmp_path, capsys, "[serch]\ntrials = 2\n")
    assert "unknown table [serch]; did you mean [search]?" in err
    err = _file_error(tmp_path, capsys, '[search]\nsampler = "tpee"\n')
    assert "setting sampler: unknown value 'tpee'; did you mean tpe?" in err
    err = _file_error(tmp_path, capsys, "[search]\nzzz = 2\n")
    assert "valid: " in err and "worker_index" not in err and "param_limit" in err
    # a file that sets nothing for nas search is a mistake, not a run on every default
    assert _file_error(tmp_path, capsys, "").endswith("s.toml has no [search] table, so it sets "
                                                     "nothing for this command")  # fmt: skip
    err = _file_error(tmp_path, capsys, "[train_winners]\nepochs = 3\n")
    assert "has no [search] table (it holds [train_winners])" in err
    # a space file in the study file's place: pass it with --space, not "use [search]"
    err = _file_error(tmp_path, capsys, (ROOT / "search_spaces/small_cifar.toml").read_text())
    assert err.endswith(
        f"s.toml is a search-space file, not a study file: give it as --space {tmp_path}/s.toml "
        "(a study file holds a [search] table of settings)"
    )


def test_a_value_is_named_where_it_was_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value the study file gave is named as the file names it; one the command line gave
    (over the file's) by its flag, with the value."""
    err = _file_error(tmp_path, capsys, "[search]\nlatency_batch = 0\ntrials = 0\n")
    assert "latency_batch = 0 in the study file: must be at least 1" in err
    assert "trials = 0 in the study file: must be at least 1" in err and "--" not in err
    code = main(["search", str(tmp_path / "s.toml"), "--trials", "0", "--latency-batch", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "--trials must be at least 1, got 0" in err and "latency_batch" not in err
    import nas

    (tmp_path / "e.toml").write_text("[search]\neta = 1\n")
    with pytest.raises(NasError, match=r"^eta = 1 in the study file: must be greater than 1$"):
        nas.Search(tmp_path / "e.toml").run()  # the Python API resolves the file the same way
