"""NaN / spiky-loss guard (no NeMo callback: Megatron-LM's ``--check-for-nan-in-loss-and-grad`` and
its rerun state machine's spiky-loss check, which former NeMo 2.0 runs got from Megatron-LM).

Toggle: ``train.check_for_nan_in_loss_and_grad`` - **on by default**, as in Megatron-LM. A NaN or
Inf loss or gradient norm stops the run with an error naming the iteration (non-zero exit). The
check runs in ``on_step``, before the loop's ``maybe_save``, so the bad step is never saved and the
last good checkpoint stays the newest one (``checkpoint.most_recent_k`` cannot delete it in favour
of NaN weights). ``train.check_for_spiky_loss`` also compares each loss with the running mean of the
last ``WINDOW`` good losses: above ``train.spiky_loss_factor`` x that mean it logs a warning
(``train.spiky_loss_action: warn``) or stops the same way (``stop``).

Cost: ``float(loss)`` every step (a CPU-GPU sync on GPU, on the last pipeline stage). With pipeline
parallelism only the last stage holds the loss, so the verdict is shared by a one-flag all-reduce
per step (collective on every rank); without it every rank that holds a loss holds the same one
(averaged over data-parallel ranks) and the grad norm is the same everywhere, so no collective.
"""

from __future__ import annotations

import collections
import logging
import math
from typing import List, Optional

from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")

WINDOW = 100  # good losses in the running mean
MIN_HISTORY = 10  # no spike verdict before this many good losses: early losses fall fast


class NonFiniteTraining(RuntimeError):
    """The loss or the gradient norm is NaN or Inf."""


class SpikyLoss(RuntimeError):
    """The loss jumped above ``spiky_loss_factor`` x its running mean (``spiky_loss_action: stop``)."""


class NanGuard:
    @staticmethod
    def config_problems(config) -> List[str]:
        """Checked by ``train``, ``config show`` and ``plugins list`` before anything is built."""
        factor = config.train.spiky_loss_factor
        if config.train.check_for_spiky_loss and not (isinstance(factor, (int, float)) and factor > 1):
            return [f"train.spiky_loss_factor: expected a number > 1 (a loss this many times the running mean is a spike), got {factor!r}"]
        return []

    def __init__(self, config):
        t = config.train
        self.spikes_on = t.check_for_spiky_loss
        self.factor = float(t.spiky_loss_factor)
        self.stop_on_spike = t.spiky_loss_action == "stop"
        self.share_verdict = config.model.pipeline_model_parallel_size > 1
        self.recent = collections.deque(maxlen=WINDOW)
        self.spikes = 0  # observable in tests and logs

    def _verdict(self, metrics) -> Optional[str]:
        loss = None if metrics.loss is None else float(metrics.loss)  # sync point, see the module doc
        grad = metrics.grad_norm
        if (loss is not None and not math.isfinite(loss)) or (grad is not None and not math.isfinite(grad)):
            return f"loss {loss} and gradient norm {grad} at iteration {metrics.iteration}"
        if loss is None:
            return None
        if self.spikes_on and len(self.recent) >= MIN_HISTORY:
            mean = sum(self.recent) / len(self.recent)
            if loss > self.factor * mean:
                self.spikes += 1
                what = (f"iteration {metrics.iteration}: loss {loss:.4f} is above train.spiky_loss_factor={self.factor:g} "
                        f"x the running mean {mean:.4f} of the last {len(self.recent)} losses")
                if self.stop_on_spike:
                    return "spike: " + what
                log.warning(f"nan_guard: {what}")
                return None  # a spike is not added to the mean
        self.recent.append(loss)
        return None

    @hookimpl
    def on_step(self, state, metrics):
        problem = self._verdict(metrics)
        if self.share_verdict:
            from plugtron import distributed

            (any_bad,) = distributed.any_rank(problem is not None)  # collective on every rank
            if any_bad and problem is None:
                problem = f"another pipeline stage found a NaN/Inf or spiky loss at iteration {metrics.iteration}"
        if problem is None:
            return
        advice = ("the step is not saved, so the newest checkpoint in checkpoint.save is the last good one; resume "
                  "from it (e.g. with a lower optimizer.lr), or switch the check off with ")
        if problem.startswith("spike: "):
            raise SpikyLoss(f"{problem[7:]}; {advice}train.spiky_loss_action=warn")
        raise NonFiniteTraining(f"{problem}; {advice}train.check_for_nan_in_loss_and_grad=false")
