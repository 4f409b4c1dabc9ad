"""Metrics file: every log record and evaluation result as one JSON line in ``metrics.jsonl``
(replaces the former NeMo / Lightning ``CSVLogger``'s ``metrics.csv``). On by default.

Toggle: ``logger.metrics_file``. The file is ``<logger.metrics_dir>/metrics.jsonl``; without
``metrics_dir`` it is ``<checkpoint.save>/metrics.jsonl`` (next to the checkpoints it belongs to);
the path is logged at the start. A run that saves nothing and sets no ``metrics_dir`` writes no file
(it says so at the start): it leaves nothing behind, which is what tests and throwaway runs from
Python want. ``plugtron train`` always has a directory (``checkpoint.runs_dir``). Written on global
rank 0 only.

Lines: ``{"kind": "step", "iteration": ..., "loss": ...}`` for every step (the first one included,
whatever ``logger.log_interval`` is; written at each log step, so they cost no extra sync),
``{"kind": "train", "iteration": ..., <the on_log record>}`` every ``log_interval`` iterations and
``{"kind": "valid"|"test", "iteration": ..., "loss": ..., "ppl": ..., "iters": ..., <plugins' keys>}`` (the
``on_eval_log`` record: what plugins' ``collect_metrics(state, split)`` add, and ``stop_reason`` when
the run stops after that evaluation).

Strict JSON: NaN / infinite values are written as ``null`` plus a ``nonfinite`` map
(``plugtron.metrics_records``), which :func:`read_records` turns back into floats.

Resume: a run that starts at iteration N (resumed from the checkpoint of N, or N = 0 for a fresh
run) first drops every line with ``iteration > N`` (written by the earlier run after its last
checkpoint, e.g. before a kill), rewriting the file atomically, then appends. So after a kill and
resume each logged iteration appears exactly once. Each line is flushed to the OS as it is written
(one ``write`` per log interval), so a killed process loses no line it logged.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Optional

from plugtron.hookspecs import hookimpl
from plugtron.metrics_records import FILE_NAME, encode, read_records  # noqa: F401  (read_records: for callers)
from plugtron.plugins.teardown import ReleaseAtEnd

log = logging.getLogger("plugtron")


def metrics_dir(config) -> Optional[str]:
    """The directory ``metrics.jsonl`` goes to, ``None`` when the run saves nothing (see the module
    doc); creates no directory."""
    return config.logger.metrics_dir or config.checkpoint.save or None


class MetricsFile(ReleaseAtEnd):  # release() at on_train_end and on_exception
    def __init__(self, config):
        where = metrics_dir(config)
        self.path = os.path.join(where, FILE_NAME) if where else None
        self._file = None

    def _truncate_after(self, iteration: int) -> int:
        """Drop the lines of iterations after ``iteration``; returns how many were dropped."""
        if not os.path.exists(self.path):
            return 0
        with open(self.path) as f:
            lines = [line for line in f if line.strip()]
        keep = []
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill mid-write
            if rec.get("iteration", 0) <= iteration:
                keep.append(line if line.endswith("\n") else line + "\n")
        if len(keep) != len(lines):
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                f.writelines(keep)
            os.replace(tmp, self.path)  # atomic: a kill now leaves the old or the new file, never half
        return len(lines) - len(keep)

    def _write(self, rec: Dict[str, Any]) -> None:
        self._file.write(encode(rec) + "\n")
        self._file.flush()

    @hookimpl
    def on_train_start(self, state):
        if not state.is_rank0:
            return
        if self.path is None:
            log.info("metrics file: not written (this run saves nothing; set logger.metrics_dir or checkpoint.save)")
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        dropped = self._truncate_after(state.iteration)
        if dropped:
            log.info(f"metrics file: dropped {dropped} line(s) after iteration {state.iteration} (resumed run)")
        self._file = open(self.path, "a")
        log.info(f"metrics file: {self.path}")

    @hookimpl
    def on_log(self, state, log):
        if self._file is None:
            return
        losses = log.get("step_losses") or []
        first = log["iteration"] - len(losses) + 1
        for it, loss in enumerate(losses, first):  # every step's loss, the first step's included
            self._write({"kind": "step", "iteration": it, "loss": loss})
        self._write({"kind": "train", **{k: v for k, v in log.items() if k != "step_losses"}})

    @hookimpl
    def on_eval_log(self, state, split, log):
        if self._file is not None:
            self._write({"kind": split, **log})

    def release(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()
