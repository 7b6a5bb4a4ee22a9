"""Registries declared light: names without importing their home, entries on first lookup."""

from __future__ import annotations

import pytest

from nas.errors import NasError
from nas.registry import Registry


def test_light_registry_names_do_not_import_and_lookup_does(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    imported: list[str] = []
    reg: Registry[int] = Registry("thing", names=("a", "b"), home="fake_home")

    def fake_import(name: str) -> None:
        imported.append(name)
        reg.add("a", 1)
        reg.add("b", 2)

    monkeypatch.setattr("nas.registry.importlib.import_module", fake_import)
    assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2
    assert imported == []
    assert reg["b"] == 2
    assert imported == ["fake_home"]
    assert reg["a"] == 1 and imported == ["fake_home"]  # imported once
    with pytest.raises(NasError, match="unknown thing 'c'; valid: a, b"):
        reg["c"]


def test_home_that_registers_other_names_is_a_bug(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    reg: Registry[int] = Registry("thing", names=("a", "b"), home="fake_home")
    monkeypatch.setattr("nas.registry.importlib.import_module", lambda name: reg.add("a", 1))
    with pytest.raises(RuntimeError, match="declares"):
        reg["a"]


def test_real_light_registries_match_their_homes() -> None:
    from nas.data.catalog import DATASETS

    for reg in (DATASETS,):
        declared = reg.names()
        assert [name for name, _ in reg.items()] == declared  # loads, checks the names


def test_a_lookup_that_is_no_name_is_one_sentence() -> None:
    """``nas.make_sampler(None, seed=0)`` raised difflib's TypeError."""
    import nas
    from nas.errors import NasError

    with pytest.raises(NasError, match=r"^sampler must be a name, one of auto, tpe, .*; got None$"):
        nas.make_sampler(None, seed=0)  # type: ignore[arg-type]
