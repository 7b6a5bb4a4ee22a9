"""README's set-up is what CI runs, and the documentation's Python examples run as printed
(its shell commands are checked by ``benchmarks/cpu_examples.py`` and
``tests/cli/test_hints.py``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
PYTHON_PAGE = ROOT / "docs" / "how-to" / "python.md"


def python_blocks(page: Path) -> list[str]:
    """The ```python blocks of a documentation page."""
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def setup_commands() -> list[str]:
    """The commands of README's Set-up block."""
    text = README.read_text()
    part = text[text.index("## Set-up\n") :]
    block = re.search(r"```bash\n(.*?)```", part, flags=re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_readmes_setup_verbatim() -> None:
    commands = setup_commands()
    assert len(commands) == 2  # the install and main job, then the tests
    assert "python3 -m venv" in commands[0] and "nas search studies/smoke.toml" in commands[0]
    assert commands[1].startswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci.index(commands[0]) < ci.index(commands[1])
    assert "mkdocs build --strict" in ci


def test_readme_is_the_first_screen() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250
    for link in re.findall(r"\]\((docs/[^)#]+)", README.read_text()):
        assert (ROOT / link).is_file(), link


@pytest.mark.slow
@pytest.mark.parametrize(("page", "index"), [(PYTHON_PAGE, 0), (PYTHON_PAGE, 1), (README, 0)])
def test_the_python_examples_run_as_printed(tmp_path: Path, page: Path, index: int) -> None:
    """A search from Python prints the best trial's number and accuracy; a user's own
    objective with ``nas.suggest`` has rejected candidates."""
    blocks = python_blocks(page)
    assert len(blocks) == 2
    shutil.copytree(ROOT / "studies", tmp_path / "studies", ignore=shutil.ignore_patterns("*.db*"))
    shutil.copytree(ROOT / "search_spaces", tmp_path / "search_spaces")
    out = subprocess.run(
        [sys.executable, "-c", blocks[index]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    if "nas.Search" in blocks[index]:
        number, accuracy, *_ = out.stdout.strip().splitlines()[-1].split()
        assert int(number) >= 0 and 0.0 <= float(accuracy) <= 1.0
    else:
        assert out.stdout.strip().endswith("rejected") and int(out.stdout.split()[0]) > 0


def test_the_readmes_suggest_example_is_the_how_tos() -> None:
    """README shows the how-to's own-objective example (one runs in the test above)."""
    assert python_blocks(README)[1] == python_blocks(PYTHON_PAGE)[1]
