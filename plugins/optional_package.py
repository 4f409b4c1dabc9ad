"""``missing_extra``: the config problem of a plugin whose optional package is not installed.

Logger backends (W&B, MLflow) are extras imported only when their plugin is enabled. Their
``config_problems`` ask here, before the run, so a missing package is one config error naming the
field that enabled the plugin and the extra to install - not an ImportError after the model is
built. Not a plugin itself (no entry point).
"""

from __future__ import annotations

import importlib.util
from typing import List


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (``None`` in ``sys.modules``, as tests
    set to hide a package, and a broken install count as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(field: str, module: str, extra: str) -> List[str]:
    """``[]`` when ``module`` is installed, else the one problem line naming ``field`` and the extra."""
    if installed(module):
        return []
    return [f"{field}: set, but the {module} package is not installed; install the extra: "
            f"pip install 'plugtron[{extra}]'"]
