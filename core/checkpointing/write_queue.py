"""Megatron's checkpoint-writer results queue, started by plugtron: safe from a plain script, and
light.

Megatron's ``torch_dist`` writer (``filesystem_async``) reports results through a queue served by a
``spawn``-context ``multiprocessing.Manager``, created at the first save - also for synchronous
saves. plugtron creates that queue itself (Megatron then uses it), for two reasons:

- A spawned process re-runs the parent's ``__main__`` *file* first, so a script that trains without
  an ``if __name__ == "__main__":`` guard would start training again in that helper and die ("An
  attempt has been made to start a new process before the current process has finished its
  bootstrapping phase", then ``EOFError``). The helper needs nothing from the script, so it is
  started with the script's path hidden from ``multiprocessing``: it starts bare, and scripts need no
  guard.
- Megatron puts torch objects (``WriteResult`` lists, or the writer's exception) on the queue, and
  the manager unpickles what it stores: the helper imported torch at the first save (seconds of CPU,
  about 270 MB per rank) and finalized it again at exit (0.5-1.3 s per rank, measured with two ranks
  on a 2-core machine, after the run summary). :class:`PickledQueue` hands the manager the pickled
  bytes instead; the manager only keeps them, and the reader unpickles what was put, unchanged.
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys


class PickledQueue:
    """The calls Megatron's writer makes on its results queue (``put`` by the writing process,
    ``get_nowait``/``get`` by the saving one), over a manager queue of pickled bytes.

    Picklable (the manager proxy is, and this module imports without torch), so it also reaches a
    spawned or forked writer process as Megatron's own proxy did."""

    def __init__(self, proxy):
        self.proxy = proxy

    def put(self, item, block: bool = True, timeout=None) -> None:
        self.proxy.put(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL), block, timeout)

    def get(self, block: bool = True, timeout=None):
        return pickle.loads(self.proxy.get(block, timeout))

    def get_nowait(self):
        return pickle.loads(self.proxy.get_nowait())

    def empty(self) -> bool:
        return self.proxy.empty()

    def qsize(self) -> int:
        return self.proxy.qsize()


def start() -> None:
    """Create Megatron's write-results queue if it does not exist yet (idempotent, rank-local)."""
    from megatron.core.dist_checkpointing.strategies import filesystem_async

    if filesystem_async._results_queue is not None:
        return
    main = sys.modules.get("__main__")
    # Run as a module (python -m ...): spawn re-imports it by name, which its own guard protects.
    hide = main is not None and getattr(main, "__spec__", None) is None and hasattr(main, "__file__")
    path = main.__dict__.pop("__file__") if hide else None
    try:
        # the queue filesystem_async._get_write_results_queue() would make, carrying bytes
        manager = multiprocessing.get_context("spawn").Manager()
        filesystem_async._results_queue = PickledQueue(manager.Queue())
    finally:
        if hide:
            main.__file__ = path
