"""Phase timers (former NeMo ``TimingCallback``; Megatron's ``--log-timers-to-tensorboard``).

Toggle: ``logger.log_timers_to_tensorboard`` (Megatron Bridge's name; like the memory plugin, the
times go into every log record through ``collect_metrics``, so every logger receives them). Per
rank, in milliseconds, averaged over the steps since the last log line:
``time_fwd_bwd_ms`` (``on_step_start`` to ``on_before_optimizer_step``: forward and backward over
all microbatches, gradient reduction included) and ``time_optimizer_ms`` (the optimizer and scheduler
step); after an evaluation, ``time_eval_ms`` (the last one's duration).

Cost: on CUDA a ``torch.cuda.synchronize()`` at each of the three step boundaries, every step (as
Megatron's timers do): without it the host times would measure kernel launches, not the work; the
sync removes the overlap of one step's tail with the next step's launches. No collective.
"""

from __future__ import annotations

import time

from plugtron.hookspecs import hookimpl


class Timers:
    def __init__(self, config, clock=time.perf_counter):
        self.clock = clock
        self.sync = None  # torch.cuda.synchronize on CUDA, decided at the start
        self._start = self._mid = self._eval_start = None
        self.fwd_bwd = self.optimizer = 0.0
        self.steps = 0
        self.last_eval = None

    def _now(self) -> float:
        if self.sync is not None:
            self.sync()
        return self.clock()

    @hookimpl
    def on_train_start(self, state):
        import torch

        self.sync = torch.cuda.synchronize if torch.cuda.is_available() and torch.cuda.is_initialized() else None

    @hookimpl
    def on_step_start(self, state):
        self._start = self._now()

    @hookimpl
    def on_before_optimizer_step(self, state):
        self._mid = self._now()

    @hookimpl
    def on_step(self, state, metrics):
        end = self._now()
        if self._start is not None and self._mid is not None:
            self.fwd_bwd += self._mid - self._start
            self.optimizer += end - self._mid
            self.steps += 1
        self._start = self._mid = None

    @hookimpl
    def on_eval_start(self, state, split):
        self._eval_start = self._now()

    @hookimpl
    def on_eval(self, state, split, metrics):
        if self._eval_start is not None:
            self.last_eval = self._now() - self._eval_start

    @hookimpl
    def collect_metrics(self, state):
        out = {}
        if self.steps:
            out["time_fwd_bwd_ms"] = 1000.0 * self.fwd_bwd / self.steps
            out["time_optimizer_ms"] = 1000.0 * self.optimizer / self.steps
        if self.last_eval is not None:
            out["time_eval_ms"] = 1000.0 * self.last_eval
        self.fwd_bwd = self.optimizer = 0.0
        self.steps = 0
        return out or None
