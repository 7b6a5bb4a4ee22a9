"""The layers import downwards only: commands -> what users read -> the two drivers (search,
fidelity, which never import each other) -> the proxy layer and the study layer -> training,
counting, space, models, data -> configs, units, registries. Read from the source (ast), so
an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "nas"

#: For each part of the package, the parts it must not import.
FORBIDDEN = {
    "nas.search": ("nas.fidelity", "nas.cli", "nas.report", "nas.dashboard", "nas.winners"),
    "nas.fidelity": ("nas.search", "nas.cli", "nas.report", "nas.dashboard", "nas.winners"),
    "nas.proxy": ("nas.search", "nas.fidelity", "nas.cli", "nas.report", "nas.winners"),
    "nas.study": ("nas.search", "nas.fidelity", "nas.proxy", "nas.cli", "nas.report"),
    "nas.training": ("nas.search", "nas.fidelity", "nas.proxy", "nas.study", "nas.cli"),
    "nas.models": ("nas.search", "nas.fidelity", "nas.proxy", "nas.study", "nas.training"),
    "nas.data": ("nas.search", "nas.fidelity", "nas.proxy", "nas.study", "nas.training"),
    "nas.space": ("nas.search", "nas.fidelity", "nas.proxy", "nas.study", "nas.training"),
    "nas.config": ("nas.models", "nas.search", "nas.fidelity", "nas.training", "nas.space"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, part: str) -> bool:
    return name == part or name.startswith(part + ".")


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_down(path: Path) -> None:
    name = module_name(path)
    bad = sorted(
        f"{name} imports {target}"
        for part, forbidden in FORBIDDEN.items()
        if _within(name, part)
        for target in imports(path)
        for no in forbidden
        if _within(target, no)
    )
    assert not bad, "; ".join(bad)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from nas.fidelity.panel import FidelityRun\n")
    assert "nas.fidelity.panel" in imports(module)
