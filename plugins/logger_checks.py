"""Checks of the logger backends' settings (TensorBoard, W&B, MLflow), run before the model is built:
what the backend would refuse in ``on_train_start`` (a tracking store MLflow refuses, a directory
that cannot be created or written) is one error naming the field instead. Not a plugin itself.

Two kinds: ``config_problems`` rows (the config alone decides: ``train``, ``config show`` and
``plugins list`` report them) and ``machine_problems`` (this machine's file system decides: checked
when the plugin loads in ``train``, so a cluster config still ``config show``s on a laptop).
"""

from __future__ import annotations

import os
from typing import List, Optional
from urllib.parse import urlparse

STORE_ALTERNATIVES = ("sqlite:///<dir>/mlflow.db (a local database), http(s)://<host>:<port> (a tracking "
                      "server), or leave it unset (a local SQLite store in mlruns/ of the run's output directory)")


def mlflow_uri_problems(uri: Optional[str]) -> List[str]:
    """MLflow 3 refuses its plain-file store (``file://...`` or a bare path: "maintenance mode") unless
    ``MLFLOW_ALLOW_FILE_STORE`` is true; say so before the run, with the stores that work."""
    if uri is None:
        return []
    scheme = urlparse(uri).scheme
    is_file_store = scheme in ("", "file") or (len(scheme) == 1 and uri[1:3] in (":\\", ":/"))  # C:\... on Windows
    allowed = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("true", "1")
    if is_file_store and not allowed:
        return [f"logger.mlflow_tracking_uri: {uri!r} is MLflow's file store, which MLflow 3 refuses (maintenance "
                f"mode); use {STORE_ALTERNATIVES} (or set MLFLOW_ALLOW_FILE_STORE=true)"]
    if scheme.startswith("sqlite") and not uri.startswith("sqlite:///"):
        return [f"logger.mlflow_tracking_uri: {uri!r}: an SQLite URI is sqlite:///<path> (three slashes, then the "
                "database file's path)"]
    return []


def mlflow_scheme_problems(uri: Optional[str]) -> List[str]:
    """A scheme no installed MLflow store handles (asks MLflow's own store registry)."""
    if uri is None:
        return []
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    except ImportError:  # another MLflow layout: its own error at on_train_start
        return []
    try:
        _tracking_store_registry.get_store_builder(uri)
    except MlflowException as err:
        return [f"logger.mlflow_tracking_uri: {uri!r}: {str(err).splitlines()[0]}; use {STORE_ALTERNATIVES}"]
    return []


def writable_dir_problem(field: str, path: str) -> Optional[str]:
    """Why ``path`` cannot be (made) a writable directory on this machine, or ``None``."""
    target = os.path.abspath(os.path.expanduser(path))
    probe = target
    while not os.path.exists(probe):  # the nearest existing ancestor decides whether it can be made
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return f"{field}: {path!r} cannot be a directory: {probe} is a file"
    if not os.access(probe, os.W_OK | os.X_OK):
        made = "" if probe == target else f" (to create {target})"
        return f"{field}: {path!r}: no permission to write in {probe}{made}; choose a writable directory"
    return None


def sqlite_dir_problem(uri: Optional[str]) -> Optional[str]:
    """The directory of an ``sqlite:///`` database must be writable (MLflow creates the file)."""
    if uri is None or not uri.startswith("sqlite:///"):
        return None
    db = uri[len("sqlite:///"):]
    if db in ("", ":memory:"):
        return None
    return writable_dir_problem("logger.mlflow_tracking_uri", os.path.dirname(os.path.abspath(db)) or ".")
