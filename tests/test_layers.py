"""The layers import downwards only: commands -> what users read -> the two drivers (search,
fidelity, which never import each other) -> the proxy layer and the study layer -> training,
counting, space, models, data -> configs, units, registries. Read from the source (ast), so
an import inside a function counts as much as one at the top.

The study core keeps what it owns: only the record layer (:mod:`nas.study.record`, through
:mod:`nas.study._optuna`) reads or writes trial and study attributes; only
:mod:`nas.study._optuna` and :mod:`nas.study._dashboard` touch private names of Optuna or
optuna-dashboard; what users read (report, export, winners, dashboard) reads studies through
the record layer and never imports the search; no package imports itself in a circle."""

from __future__ import annotations

import ast
import functools
import importlib.util
import textwrap
from collections.abc import Iterable, Set
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
    "nas.objectives": ("nas.search", "nas.fidelity", "nas.study", "nas.proxy", "nas.training"),
    # what users read goes through the record layer, never through the search
    "nas.report": ("nas.search", "nas.fidelity", "nas.cli"),
    "nas.export": ("nas.search", "nas.fidelity", "nas.cli"),
    "nas.winners": ("nas.search", "nas.fidelity", "nas.cli"),
    "nas.dashboard": ("nas.search", "nas.fidelity", "nas.cli"),
}


def module_name(path: Path) -> str:
    if not path.is_relative_to(ROOT):  # a module a test writes elsewhere
        return path.stem
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


# --------------------------------------------------------------------------- the record layer
#: The modules that may touch trial and study attributes: the record layer and the storage
#: primitives it is built on.
RECORD_LAYER = ("nas.study.record", "nas.study._optuna")
#: The names that read or write them, on Optuna's objects or storages.
ATTRIBUTE_ACCESS = frozenset(
    {
        "user_attrs",
        "system_attrs",
        "set_user_attr",
        "set_system_attr",
        "get_trial_user_attrs",
        "get_trial_system_attrs",
        "set_trial_user_attr",
        "set_trial_system_attr",
        "get_study_user_attrs",
        "get_study_system_attrs",
        "set_study_user_attr",
        "set_study_system_attr",
        "study_system_attrs",
    }
)


def attribute_access(path: Path) -> list[str]:
    """Each place ``path`` reads or writes trial or study attributes: an attribute of that
    name, or a keyword argument (``enqueue_trial(user_attrs=...)``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        name = None
        if isinstance(node, ast.Attribute) and node.attr in ATTRIBUTE_ACCESS:
            name = node.attr
        elif isinstance(node, ast.keyword) and node.arg in ATTRIBUTE_ACCESS:
            name = f"{node.arg}="
        if name is not None:
            found.append(f"{module_name(path)}:{getattr(node, 'lineno', '?')} {name}")
    return found


def test_only_the_record_layer_touches_trial_attributes() -> None:
    outside = [p for p in MODULES if module_name(p) not in RECORD_LAYER]
    found = [hit for p in outside for hit in attribute_access(p)]
    assert not found, "; ".join(found)


def test_the_attribute_check_sees_reads_writes_and_keywords(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f(t, s):\n    t.user_attrs.get('a')\n    t.set_user_attr('b', 1)\n"
        "    s.enqueue_trial({}, user_attrs={'preset': 'x'})\n"
    )
    found = sorted(hit.split()[-1] for hit in attribute_access(module))
    assert found == ["set_user_attr", "user_attrs", "user_attrs="]


# --------------------------------------------------------------------------- private API
#: The modules that may use private names of Optuna and optuna-dashboard.
PRIVATE_API = ("nas.study._optuna", "nas.study._dashboard")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def defined_private_names(paths: Iterable[Path]) -> set[str]:
    """Every private name the modules ``paths`` define (functions, methods, attributes,
    classes, names bound or imported)."""
    names: set[str] = set()
    for path in paths:
        try:
            tree = ast.parse(path.read_text())
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.split(".")[-1])
    return {n for n in names if _private(n)}


@functools.cache
def optuna_private_names() -> frozenset[str]:
    """The private names Optuna and optuna-dashboard define that ``nas`` does not define
    itself (``_storage``, ``_trial_id``, ``_get_generation_key``...)."""
    theirs: set[str] = set()
    for package in ("optuna", "optuna_dashboard"):
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None
        theirs |= defined_private_names(Path(spec.origin).parent.rglob("*.py"))
    return frozenset(theirs - defined_private_names(MODULES))


def private_api(path: Path, theirs: Set[str]) -> list[str]:
    """Each use in ``path`` of a private name of Optuna or optuna-dashboard: an import from
    one of their private modules (or of a private name), or an attribute ``._x`` that they
    define and ``nas`` does not (``study._storage``, ``trial._trial_id``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top in ("optuna", "optuna_dashboard") and (
                any(_private(part) for part in node.module.split("."))
                or any(_private(alias.name) for alias in node.names)
            ):
                found.append(f"{module_name(path)}:{node.lineno} from {node.module} import")
        elif isinstance(node, ast.Attribute) and node.attr in theirs:
            found.append(f"{module_name(path)}:{node.lineno} .{node.attr}")
    return found


def test_private_api_of_optuna_and_the_dashboard_is_confined() -> None:
    theirs = optuna_private_names()
    assert {"_storage", "_trial_id", "_get_generation_key"} <= theirs
    outside = [p for p in MODULES if module_name(p) not in PRIVATE_API]
    found = [hit for p in outside for hit in private_api(p, theirs)]
    assert not found, "; ".join(found)


def test_the_private_api_check_sees_imports_and_attributes(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from optuna_dashboard import _app\nfrom optuna.storages._rdb import models\n"
        "def f(study, trial):\n    return study._storage, trial._trial_id, study.user_attrs\n"
    )
    found = sorted(hit.split(" ", 1)[1] for hit in private_api(module, {"_storage", "_trial_id"}))
    assert found == [
        "._storage",
        "._trial_id",
        "from optuna.storages._rdb import",
        "from optuna_dashboard import",
    ]


def test_every_private_name_used_is_checked_against_a_version() -> None:
    for name in PRIVATE_API:
        text = (PACKAGE / Path(*name.split(".")[1:])).with_suffix(".py").read_text()
        assert "CHECKED_AGAINST" in text and "checked against" in text.lower(), name


# --------------------------------------------------------------------------- import loops
def _package_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (``nas.search.loop`` -> ...)."""
    members = {module_name(p): p for p in MODULES if _within(module_name(p), package)}
    graph: dict[str, set[str]] = {}
    for name, path in members.items():
        graph[name] = {
            target
            for imported in imports(path)
            for target in members
            if target != name and target != package and imported == target
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("package", ["nas.search", "nas.fidelity", "nas.study", "nas.cli"])
def test_no_import_loops_inside_a_package(package: str) -> None:
    assert not cycles(_package_graph(package))


def test_the_loop_check_finds_a_loop() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


#: The packages that run a study (its opening, loop, record and commands) keep each function
#: short enough to read whole.
SHORT_FUNCTIONS = ("search", "study", "cli")
MAX_FUNCTION_LINES = 60


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """Each function or method of ``source`` longer than ``limit`` lines (its signature,
    docstring and body), with its length."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > limit
    ]


@pytest.mark.parametrize("package", SHORT_FUNCTIONS)
def test_no_function_in_the_study_packages_is_longer_than_60_lines(package: str) -> None:
    found = {
        f"{path.relative_to(ROOT)}:{name}": lines
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for name, lines in long_functions(path.read_text())
    }
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines: {found}"


def test_the_length_check_counts_signature_docstring_and_body() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(57))
    fits = 'def f(\n    a: int,\n) -> None:\n    """Doc."""\n' + body[: -len("    x56 = 56\n")]
    assert long_functions(fits) == []
    assert long_functions(fits + "    a += 1\n") == [("f", 61)]
    method = "class C:\n" + textwrap.indent(fits + "    a += 1\n", "    ")
    assert long_functions(method) == [("f", 61)]
