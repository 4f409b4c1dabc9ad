"""What the loop carries between steps and hands to plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from plugtron.training.metrics import StepMetrics
from plugtron.training.ranks import RankInfo


@dataclass
class TrainState:
    """The run's progress. Plain counters are what a checkpoint's train state records."""

    config: Any
    model: List[Any] = field(default_factory=list)  # model chunks (DDP-wrapped), one per virtual stage
    optimizer: Any = None
    scheduler: Any = None
    iteration: int = 0
    consumed_train_samples: int = 0
    skipped_train_iterations: int = 0
    floating_point_operations_so_far: float = 0.0
    should_stop: bool = False
    should_save: bool = False
    stop_reason: Optional[str] = None
    ranks: Optional[RankInfo] = None  # filled on first use (after the process groups exist)

    # ---- where this rank sits (hooks fire on every rank) -----------------------------------------
    def _ranks(self) -> RankInfo:
        if self.ranks is None:
            from plugtron.training.ranks import current

            self.ranks = current()
        return self.ranks

    @property
    def is_rank0(self) -> bool:
        """Global rank 0: write files and log lines once."""
        return self._ranks().is_rank0

    @property
    def rank(self) -> int:
        """This process's global rank (per-rank file names, ``profiling.profile_ranks``)."""
        return self._ranks().rank

    @property
    def is_last_stage(self) -> bool:
        """The last pipeline stage, where ``metrics.loss`` is a tensor (elsewhere it is ``None``)."""
        return self._ranks().is_last_stage

    @property
    def dp_rank(self) -> int:
        return self._ranks().dp_rank

    @property
    def dp_size(self) -> int:
        return self._ranks().dp_size

    def request_stop(self, reason: str, save: bool = True) -> None:
        """Ask the loop to stop after the current step (and save first if ``save``).

        Any rank may call it; the loop reduces the request across ranks, so all stop together."""
        self.should_stop = True
        self.should_save = self.should_save or save
        self.stop_reason = reason

    def step_lr(self) -> float:
        """The learning rate the next optimizer step uses (read it before the step: the scheduler
        step after the update moves it to the following step's)."""
        return self.scheduler.get_lr(self.optimizer.param_groups[0])

    def record_step(self, loss, ok: bool, grad_norm, num_zeros, flops: float, *, lr: float,
                    real_tokens=None) -> StepMetrics:
        """Advance the counters by one finished iteration and return its metrics (the loop and
        benchmarks/hook_overhead.py both call this, so they do the same per-step work). ``lr``: the
        rate the step used, from :meth:`step_lr` before it."""
        t = self.config.train
        self.iteration += 1
        self.consumed_train_samples += t.global_batch_size
        self.skipped_train_iterations += 0 if ok else 1
        self.floating_point_operations_so_far += flops
        return StepMetrics(
            iteration=self.iteration,
            loss=loss,
            grad_norm=None if grad_norm is None else float(grad_norm),
            lr=lr,
            skipped=not ok,
            num_zeros_in_grad=num_zeros,
            real_tokens=real_tokens,
        )

    def counters(self) -> dict:
        return {
            "iteration": self.iteration,
            "consumed_train_samples": self.consumed_train_samples,
            "skipped_train_iterations": self.skipped_train_iterations,
            "floating_point_operations_so_far": self.floating_point_operations_so_far,
        }
