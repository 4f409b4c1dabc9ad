"""Preemption (former NeMo ``PreemptionCallback``).

Toggle: ``train.exit_signal_handler``; the signal is ``train.exit_signal`` (default ``SIGTERM``,
what schedulers such as SLURM and Kubernetes send before they kill a job). When any rank receives
it, the run finishes the current step, every rank agrees to stop (the loop's stop flag is reduced
across ranks, so one signalled rank is enough), the checkpoint is saved and the process exits 0.

The handler only sets a flag: it runs between Python bytecodes of the main thread, possibly inside
a collective's wait, where doing real work could deadlock. The previous handler is restored when
training ends or fails.
"""

from __future__ import annotations

import logging
import signal

from plugtron.hookspecs import hookimpl
from plugtron.plugins.teardown import ReleaseAtEnd

log = logging.getLogger("plugtron")


def parse_signal(name: str) -> signal.Signals:
    """``"SIGTERM"``, ``"TERM"`` or a number -> the signal; anything else is an error naming the field."""
    text = str(name).strip().upper()
    try:
        return signal.Signals(int(text)) if text.isdigit() else signal.Signals[text if text.startswith("SIG") else "SIG" + text]
    except (KeyError, ValueError):
        known = ", ".join(s.name for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2))
        raise ValueError(f"train.exit_signal: unknown signal {name!r}; e.g. {known}") from None


class Preemption(ReleaseAtEnd):  # release() at on_train_end and on_exception
    @staticmethod
    def config_problems(config):
        """Checked by ``train``, ``config show`` and ``plugins list`` before anything is built."""
        try:
            parse_signal(config.train.exit_signal)
        except ValueError as exc:
            return [str(exc)]
        return []

    def __init__(self, config):
        self.signum = parse_signal(config.train.exit_signal)
        self.will_save = bool(config.checkpoint.save)
        self.received = False
        self._previous = None

    def _handler(self, signum, frame) -> None:
        self.received = True  # only a flag: see the module docstring

    @hookimpl
    def on_train_start(self, state):
        if not self.will_save:
            log.warning(f"preemption: checkpoint.save is not set; {self.signum.name} will stop the run without saving")
        self._previous = signal.signal(self.signum, self._handler)

    @hookimpl
    def on_step(self, state, metrics):
        if self.received:
            state.request_stop(f"received {self.signum.name} (preemption)", save=True)

    def release(self) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)
            self._previous = None
