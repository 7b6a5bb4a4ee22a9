"""A trial that runs out of memory leaves nothing alive for the next trial to trip over."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import pytest

import nas.proxy.context as objective_module
from tests.conftest import tiny_search


@pytest.mark.slow
def test_the_failed_trials_model_is_freed_before_the_next_trial(
    tiny_space: Path, image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models: list[weakref.ref[Any]] = []
    alive_at_next_build: list[bool] = []
    build = objective_module.build_model

    def tracking_build(*args: Any, **kwargs: Any) -> Any:
        alive_at_next_build.extend(ref() is not None for ref in models)
        model = build(*args, **kwargs)
        models.append(weakref.ref(model))
        return model

    monkeypatch.setattr(objective_module, "build_model", tracking_build)
    monkeypatch.setenv("NAS_INJECT_FAULT", "oom@0")
    study = tiny_search(
        tiny_space,
        image_folder,
        tmp_path / "m.db",
        "m",
        trials=1,
        proxy_epochs=1,
        proxy_subset=48,
        proxy_val=12,
    )
    assert study.trials[0].state.name == "FAIL"
    assert "out of memory" in study.trials[0].user_attrs["fail_reason"]
    assert study.trials[1].state.name == "COMPLETE"
    assert alive_at_next_build == [False]  # trial 0's model was gone when trial 1 began
