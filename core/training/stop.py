"""Every way a run ends before ``train.train_iters``, in one place.

* ``train.exit_interval``: stop after an iteration that is a multiple of it (``ExitInterval``).
* ``train.exit_duration_in_mins``: stop once the loop has run that long (``TimeLimit``).
* Plugins ask from their hooks with ``state.request_stop(reason, save=...)``; the ``preemption``
  plugin (``train.exit_signal_handler``) does so when ``train.exit_signal`` (default SIGTERM)
  arrives on any rank.

Each policy is checked after every step on every rank and calls ``state.request_stop`` as a plugin
would; ``Trainer.agree_stop`` then makes all ranks agree (one tiny all-reduce), so a request seen on
a single rank stops every rank after the same step. A stop saves first (save-last) unless it was
requested with ``save=False``.
"""

from __future__ import annotations

import time
from typing import List


class ExitInterval:
    def __init__(self, every: int):
        self.every = every

    def check(self, state) -> None:
        if state.iteration % self.every == 0:
            state.request_stop(f"exit_interval {self.every} reached")


class TimeLimit:
    """Wall-clock minutes since the policy was made (the trainer makes it as the first step starts)."""

    def __init__(self, minutes: float):
        self.minutes, self.start = minutes, time.perf_counter()

    def check(self, state) -> None:
        if (time.perf_counter() - self.start) / 60.0 >= self.minutes:
            state.request_stop(f"exit_duration_in_mins {self.minutes} reached")


def stop_policies(train_cfg) -> List:
    """The built-in policies ``train`` enables (none by default: then nothing runs per step)."""
    policies: List = []
    if train_cfg.exit_interval:
        policies.append(ExitInterval(train_cfg.exit_interval))
    if train_cfg.exit_duration_in_mins:
        policies.append(TimeLimit(train_cfg.exit_duration_in_mins))
    return policies
