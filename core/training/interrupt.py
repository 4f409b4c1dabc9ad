"""Ctrl-C never loses a run: on SIGINT or SIGTERM, a run that saves (``checkpoint.save``; the
command's default run directory included) finishes the current step, saves a checkpoint and stops
cleanly (exit status 0); its summary says where the checkpoint is and how to resume. A second
signal aborts at once (``KeyboardInterrupt``: ``plugtron: interrupted``, exit status 130).

The same as the ``preemption`` plugin (``train.exit_signal_handler``), always on for the two
signals a person or a scheduler sends to stop a job. With the plugin on, its ``train.exit_signal``
stays the plugin's. A run that saves nothing keeps Python's behaviour (Ctrl-C raises at once).

The handler only sets a flag and writes one line with ``os.write`` (no logging, no locks): it runs
between bytecodes of the main thread, possibly inside a collective's wait. The trainer checks the
flag after each step like any stop policy; ``Trainer.agree_stop`` makes all ranks stop together.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Dict

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_SHOWN = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class InterruptStop:
    """A stop policy (``check(state)``) that owns the SIGINT/SIGTERM handlers while installed."""

    def __init__(self, cfg, rank0: bool):
        self.rank0 = rank0
        self.received = None
        skip = set()
        if cfg.train.exit_signal_handler:  # the preemption plugin owns its signal (a name the rules checked)
            skip.add(getattr(signal, str(cfg.train.exit_signal), None))
        self.signals = [s for s in SIGNALS if s not in skip]
        self._previous: Dict[int, object] = {}

    def install(self) -> "InterruptStop":
        if threading.current_thread() is threading.main_thread():  # Python allows handlers there only
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        if self.received is not None:  # the second one: abort now
            self.restore()
            raise KeyboardInterrupt
        self.received = signal.Signals(signum)
        if self.rank0:
            os.write(2, (f"\nplugtron: {_SHOWN.get(self.received, self.received.name)} received: saving a checkpoint "
                         "after this step, then stopping (press Ctrl-C again to abort without saving)\n").encode())

    def check(self, state) -> None:
        if self.received is not None and not state.should_stop:
            state.request_stop(f"{_SHOWN.get(self.received, self.received.name)} received", save=True)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
