"""Shared fixtures. Megatron's import-time warnings about missing TE/Apex are expected on CPU."""

import os
import warnings

os.environ.setdefault("PLUGTRON_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "plugtron-index"))
warnings.filterwarnings("ignore", message=".*Transformer Engine and Apex are not installed.*")

import pytest


@pytest.fixture(autouse=True)
def _fresh_registry():
    """Each test reads the entry points afresh (several tests patch ``importlib.metadata.entry_points``)."""
    from plugtron import registry

    registry.refresh()
    yield
    registry.refresh()
