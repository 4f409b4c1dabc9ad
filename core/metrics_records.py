"""``metrics.jsonl`` lines: the format the metrics_file plugin writes and ``plugtron plot`` (and tests)
read. Torch-free. Strict JSON: a NaN or infinite value (a diverged loss, a grad norm after an fp16
overflow) is written as ``null`` and named in ``"nonfinite": {"loss": "nan"}`` (``"inf"``,
``"-inf"``), since ``NaN`` is not JSON and strict parsers (``jq``, JavaScript, Go) reject the line;
:func:`decode` turns them back into floats."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List

FILE_NAME = "metrics.jsonl"


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
