"""A run's output directory and its ``metrics.jsonl`` lines: the format the metrics_file plugin
writes and ``plugtron plot`` (and tests) read. Torch-free. Strict JSON: a NaN or infinite value (a diverged loss, a grad norm after an fp16
overflow) is written as ``null`` and named in ``"nonfinite": {"loss": "nan"}`` (``"inf"``,
``"-inf"``), since ``NaN`` is not JSON and strict parsers (``jq``, JavaScript, Go) reject the line;
:func:`decode` turns them back into floats."""

from __future__ import annotations

import json
import math
import numbers
import os
import tempfile
import time
import weakref
from typing import Any, Dict, Iterable, List

FILE_NAME = "metrics.jsonl"
_TEMP_DIRS: Dict[int, tuple] = {}  # id(config) -> (weak ref to it, its temp run dir)


def output_dir(config) -> str:
    """A run's output directory: where ``metrics.jsonl`` goes and W&B / MLflow keep their local
    data by default. ``logger.metrics_dir``, else ``checkpoint.save``, else a fresh
    ``<temp dir>/plugtron-runs/<UTC time>-<pid>-<n>`` (a run that saves nothing cannot be resumed, so
    each gets its own), chosen once per config object so every plugin of a run agrees. Creates nothing."""
    if config.logger.metrics_dir:
        return config.logger.metrics_dir
    if config.checkpoint.save:
        return config.checkpoint.save
    ref, path = _TEMP_DIRS.get(id(config), (None, None))
    if ref is None or ref() is not config:  # an id is reused once its object is gone
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = os.path.join(tempfile.gettempdir(), "plugtron-runs", f"{stamp}-{os.getpid()}-{len(_TEMP_DIRS)}")
        _TEMP_DIRS[id(config)] = (weakref.ref(config), path)
    return path


def encode(rec: Dict[str, Any]) -> str:
    """One strict-JSON line (non-finite floats become null + ``nonfinite``)."""
    bad = {k: repr(v) for k, v in rec.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        rec = {**{k: (None if k in bad else v) for k, v in rec.items()}, "nonfinite": bad}
    return json.dumps(rec, allow_nan=False)


def decode(line: str) -> Dict[str, Any]:
    """A record as it was logged: the ``nonfinite`` values are floats again."""
    rec = json.loads(line)
    for k, v in rec.pop("nonfinite", {}).items():
        rec[k] = float(v)
    return rec


def read_records(path) -> List[Dict[str, Any]]:
    """Every record of a metrics file, in order. A line torn by a kill mid-write (the last one) is skipped."""
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                try:
                    out.append(decode(line))
                except json.JSONDecodeError:
                    continue
    return out


def numeric_items(record: Dict[str, Any], prefix: str, skip: Iterable[str] = ("iteration",)) -> Dict[str, float]:
    """``prefix/key -> float`` for the finite real numbers of a record: what a metrics backend can
    plot (bools, ``None`` - e.g. no grad norm - and NaN/inf are left out)."""
    return {f"{prefix}/{k}": float(v) for k, v in record.items()
            if k not in skip and isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)}
