"""The pytest side of ``plugtron.testing`` (registered through the ``pytest11`` entry point, so any
project that installs plugtron gets it). Importing this module imports neither torch nor Megatron:
a test session that never asks for ``plugtron_run`` pays nothing."""

from __future__ import annotations

from typing import Any, Iterable

import pytest

from plugtron import testing


class Runner:
    """``plugtron_run(overrides, plugins)`` trains the tiny model into this test's own directory."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.runs = 0

    def __call__(self, overrides: Iterable[str] = (), plugins: Any = (), save: bool = True) -> testing.RunResult:
        self.runs += 1
        ckpt = str(self.tmp_path / f"plugtron-run{self.runs}") if save else None
        return testing.run_training(overrides, plugins, checkpoint_dir=ckpt)

    def resume(self, result: testing.RunResult, overrides: Iterable[str] = (), plugins: Any = (), **kwargs) -> testing.RunResult:
        """Continue ``result``'s checkpoint with its whole configuration (recipe, overrides, plugins
        enabled by name); ``overrides`` change keys on top (see :func:`plugtron.testing.resume`)."""
        return testing.resume(result, overrides, plugins, **kwargs)


@pytest.fixture
def plugtron_run(tmp_path) -> Runner:
    """Run a tiny real plugtron training in process: ``result = plugtron_run(["train.train_iters=4"],
    [MyPlugin()])``; ``plugtron_run.resume(result, plugins=[MyPlugin()])`` continues its checkpoint
    with the same configuration."""
    return Runner(tmp_path)
