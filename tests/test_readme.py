"""README's Python examples run as printed (its shell commands are checked by
``benchmarks/cpu_examples.py`` and ``tests/cli/test_hints.py``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of README's ``## section``."""
    text = README.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    part = text[start : end if end > 0 else len(text)]
    return re.findall(r"```python\n(.*?)```", part, flags=re.S)


@pytest.mark.slow
@pytest.mark.parametrize("index", [0, 1])
def test_the_python_examples_run_as_printed(tmp_path: Path, index: int) -> None:
    blocks = python_blocks("From Python")
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
    if index == 0:
        assert 0.0 <= float(out.stdout.strip().splitlines()[-1]) <= 1.0
    else:
        assert out.stdout.strip().endswith("rejected") and int(out.stdout.split()[0]) > 0
