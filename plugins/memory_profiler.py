"""CUDA memory history (former NeMo ``MemoryProfileCallback``; Megatron Bridge's ``record_memory_history``).

Toggle: ``profiling.record_memory_history``. On the ranks in ``profiling.profile_ranks`` it starts
``torch.cuda.memory._record_memory_history`` (the last 100,000 allocations and frees, with stacks)
in ``configure_model`` - before the model, the gradient buffers and the optimizer state are
allocated - and writes one snapshot per rank::

    profiling.memory_snapshot_path = snapshot.pickle  ->  snapshot-rank<R>.pickle

(relative paths are relative to the working directory) after iteration ``profile_step_end``, or at
the end of training when the run stops before it, or when the run fails (an out-of-memory error is
what one most wants to see). Then recording stops. Open the file at https://pytorch.org/memory_viz.
A snapshot file that already exists is never overwritten: the run refuses to start (naming the
file), and a file that appears meanwhile is left alone with an error in the log.

Needs CUDA: on a machine without it the run stops when the plugins load (right after the config is
validated) with an error naming ``profiling.record_memory_history``. Cost: a stack trace per CUDA
allocation while recording (a few percent of step time); the snapshot write (tens of MB). No collective.
"""

from __future__ import annotations

import logging
import os
import pickle
from typing import List, Optional

from plugtron.errors import ConfigError
from plugtron.hookspecs import hookimpl
from plugtron.plugins.profiling_window import profiles_rank, require_cuda, window_problems
from plugtron.plugins.teardown import ReleaseAtEnd

log = logging.getLogger("plugtron")

MAX_ENTRIES = 100_000  # NeMo's MemoryProfileCallback and Megatron-LM keep this many events


def snapshot_path(path: str, rank: int) -> str:
    """``snapshot.pickle`` -> ``snapshot-rank3.pickle`` (the rank before the extension)."""
    stem, ext = os.path.splitext(path)
    return f"{stem}-rank{rank}{ext or '.pickle'}"


class MemoryProfiler(ReleaseAtEnd):
    @staticmethod
    def config_problems(config) -> List[str]:
        """Checked by ``train``, ``config show`` and ``plugins list`` before anything is built."""
        return window_problems(config)

    def __init__(self, config):
        require_cuda("profiling.record_memory_history", "CUDA memory history")
        self.config = config
        existing = [snapshot_path(config.profiling.memory_snapshot_path, r) for r in config.profiling.profile_ranks]
        existing = [p for p in existing if os.path.exists(p)]
        if existing:
            raise ConfigError([f"profiling.memory_snapshot_path: {', '.join(existing)} already exist(s) (an earlier "
                               "run's snapshot?); move it or choose another path - plugtron never overwrites it"])
        self.recording = False
        self.path: Optional[str] = None
        self.written: List[str] = []  # observable in tests

    @hookimpl
    def configure_model(self, config, provider):
        import torch

        from plugtron.training.ranks import current

        rank = current().rank  # the process groups exist by now
        if profiles_rank(config, rank):
            self.path = snapshot_path(config.profiling.memory_snapshot_path, rank)
            torch.cuda.memory._record_memory_history(max_entries=MAX_ENTRIES)
            self.recording = True

    @hookimpl
    def on_step(self, state, metrics):
        if self.recording and metrics.iteration >= self.config.profiling.profile_step_end:
            self.release()

    def release(self) -> None:
        """Write this rank's snapshot and stop recording (once)."""
        if not self.recording:
            return
        import torch

        self.recording = False
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with open(self.path, "xb") as f:  # "x": never overwrite
                pickle.dump(torch.cuda.memory._snapshot(), f)  # what _dump_snapshot writes
            self.written.append(self.path)
            log.info(f"memory_profiler: CUDA memory snapshot written to {self.path} (open it at https://pytorch.org/memory_viz)")
        except FileExistsError:
            log.error(f"memory_profiler: {self.path} appeared during the run; not overwritten, no snapshot written")
        finally:
            torch.cuda.memory._record_memory_history(enabled=None)
