"""Megatron's checkpoint writer, safe to start from a plain script.

Megatron's ``torch_dist`` writer (``filesystem_async``) reports results through a queue served by a
``spawn``-context ``multiprocessing.Manager``, created at the first save - also for synchronous
saves. A spawned process re-runs the parent's ``__main__`` *file* first, so a script that trains
without an ``if __name__ == "__main__":`` guard would start training again in that helper and die
("An attempt has been made to start a new process before the current process has finished its
bootstrapping phase", then ``EOFError``). The helper needs nothing from the script, so the queue is
started here, once, with the script's path hidden from ``multiprocessing``: the helper then starts
bare, and scripts need no guard.
"""

from __future__ import annotations

import sys


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
        filesystem_async._get_write_results_queue()
    finally:
        if hide:
            main.__file__ = path
