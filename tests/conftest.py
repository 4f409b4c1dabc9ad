"""Shared fixtures. Megatron's import-time warnings about missing TE/Apex are expected on CPU."""

import os
import warnings

os.environ.setdefault("PLUGTRON_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "plugtron-index"))
warnings.filterwarnings("ignore", message=".*Transformer Engine and Apex are not installed.*")
