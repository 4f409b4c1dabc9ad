"""Ctrl-C never loses a run: on SIGINT or SIGTERM, a run that saves (``checkpoint.save``; the
command's default run directory included) finishes the current step, saves a checkpoint and stops
cleanly (exit status 0); its summary says where the checkpoint is and how to resume. A second
signal aborts at once (``KeyboardInterrupt``: ``plugtron: interrupted``, exit status 130).

The same as the ``preemption`` plugin (``train.exit_signal_handler``), always on for the two
signals a person or a scheduler sends to stop a job. With the plugin on, its ``train.exit_signal``
stays the plugin's. A run that saves nothing keeps Python's behaviour (Ctrl-C raises at once).

Under torchrun a single Ctrl-C arrives twice: the terminal sends SIGINT to the whole foreground
process group (the launcher and every worker), and torchrun's launcher passes each SIGINT/SIGTERM
it receives on to its workers at once. So under torchrun (``TORCHELASTIC_RUN_ID`` set) a repeat of
the same signal within ``FORWARD_WINDOW_S`` of the first is taken for that forward, not for a second
Ctrl-C. torchrun then waits ``--shutdown-timeout`` seconds (default 30) for its workers and kills
them with SIGKILL: a save that takes longer needs a larger value (docs/launching.md).

The handler only sets a flag and writes one line with ``os.write`` (no logging, no locks): it runs
between bytecodes of the main thread, possibly inside a collective's wait. The trainer checks the
flag after each step like any stop policy; ``Trainer.agree_stop`` makes all ranks stop together.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Dict, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_SHOWN = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}
# torchrun's launcher forwards a signal within milliseconds of receiving it; a person's second
# Ctrl-C comes later than this
FORWARD_WINDOW_S = 1.0


def under_torchrun() -> bool:
    return bool(os.environ.get("TORCHELASTIC_RUN_ID"))


class InterruptStop:
    """A stop policy (``check(state)``) that owns the SIGINT/SIGTERM handlers while installed."""

    def __init__(self, cfg, rank0: bool):
        self.rank0 = rank0
        self.received = None
        self.received_at: Optional[float] = None
        self.launcher_forwards = under_torchrun()
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
        now = time.monotonic()
        if self.received is not None:
            if (self.launcher_forwards and signum == self.received
                    and now - self.received_at < FORWARD_WINDOW_S):
                return  # torchrun passing on the same Ctrl-C (see the module docstring)
            self.restore()  # a second Ctrl-C: abort now
            raise KeyboardInterrupt
        self.received, self.received_at = signal.Signals(signum), now
        if self.rank0:
            os.write(2, (f"\nplugtron: {_SHOWN.get(self.received, self.received.name)} received: saving a checkpoint "
                         "after this step, then stopping (press Ctrl-C again to abort without saving)\n").encode())

    def reason(self) -> Optional[str]:
        return None if self.received is None else f"{_SHOWN.get(self.received, self.received.name)} received"

    def check(self, state) -> None:
        if self.received is not None and not state.should_stop:
            state.request_stop(self.reason(), save=True)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
