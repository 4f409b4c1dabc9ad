"""The ``plugtron`` process: run one command, then leave without a long interpreter shutdown.

The console script and ``python -m plugtron`` (what torchrun starts) call :func:`console`; code that
calls ``plugtron.cli.main`` itself (a test, a notebook) keeps its interpreter as it was. A script
that trains and then exits may call :func:`collect_then_freeze` as its last line (tests/_dist_train.py
does).

Why: a process that imported torch, Megatron-Core and transformers holds about 500,000 objects the
garbage collector tracks. At exit CPython clears the modules and runs full collections over all of
them - measured 1.2-1.9 s per process on an idle 2-core machine, many seconds on a busy one - after
the run summary is printed and before torchrun can return.
"""

from __future__ import annotations

import gc
from typing import Optional, Sequence


def collect_then_freeze() -> None:
    """One full collection, then ``gc.freeze()``: call it when the process is about to exit.

    The collection finalizes every object that is garbage by then, as the shutdown would have
    (buffered files flushed, ``__del__`` and weakref callbacks run). What is still alive then is
    moved out of the collector's reach, so the shutdown's collections have next to nothing to walk.
    Unchanged: the exit status, the atexit handlers (logging's flush, multiprocessing's helpers),
    the flush of stdout/stderr, and the release of what only modules hold (reference counting still
    frees it as the modules are cleared). Only reference cycles that first become garbage while the
    modules are cleared stay unfreed - CPython does not promise to finalize those at exit anyway -
    and the operating system takes back their memory."""
    gc.collect()
    gc.freeze()


def console(argv: Optional[Sequence[str]] = None) -> int:
    """The ``plugtron`` command: :func:`plugtron.cli.main`, then :func:`collect_then_freeze` -
    also when the command fails (its message and exit status are unchanged)."""
    from plugtron.cli.main import main

    try:
        return main(argv)
    finally:
        collect_then_freeze()
