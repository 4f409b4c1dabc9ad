"""A step-timing (throughput) callback in NeMo 2.0's style: its totals survive a resume through the
callback's state_dict, and only rank 0 writes the summary."""

import time

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from nemo.utils import logging


class StepTimingCallback(Callback):
    def __init__(self, log_every: int = 1):
        self.log_every = log_every
        self.steps_timed = 0
        self.total_time = 0.0
        self._start = None

    def on_train_start(self, trainer, pl_module):
        self.max_steps = trainer.max_steps
        self.started_at = trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()
        self.first_batch_idx = getattr(self, "first_batch_idx", batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.total_time += time.perf_counter() - self._start
        self.steps_timed += 1
        if trainer.global_step % self.log_every == 0 and trainer.is_global_zero:
            logging.info(f"step {trainer.global_step}/{trainer.max_steps}: {self.total_time / self.steps_timed:.3f} s/step")

    def state_dict(self):
        return {"steps_timed": self.steps_timed, "total_time": self.total_time}

    def load_state_dict(self, state_dict):
        self.steps_timed = state_dict["steps_timed"]
        self.total_time = state_dict["total_time"]

    @rank_zero_only
    def on_train_end(self, trainer, pl_module):
        self.summary = f"{self.steps_timed} steps in {self.total_time:.2f} s"
