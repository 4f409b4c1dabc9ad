"""What a step reports and what a log line says: ``StepMetrics`` (one iteration, handed to
``on_step``) and ``LogWindow``, which accumulates them between log lines and formats the record
``on_log`` receives."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch

ETA_WINDOW = 20  # steps the ETA's step time is averaged over

@dataclass
class StepMetrics:
    """Results of one iteration (see ``hookspecs.on_step``)."""

    iteration: int
    loss: Any  # 0-d tensor on the last pipeline stage, None elsewhere; float() is a sync point
    grad_norm: Optional[float]
    lr: float
    skipped: bool
    num_zeros_in_grad: Optional[float] = None
    # the global batch's non-padding positions (SFT, T5: 0-d tensor on the device, last pipeline
    # stage); None: every position is a token (GPT pretraining), see positions_per_step
    real_tokens: Any = None


def positions_per_step(cfg) -> int:
    """Token positions of one global batch, padding included (T5: encoder + decoder)."""
    from plugtron.providers.model_kind import kind_for

    return cfg.train.global_batch_size * kind_for(cfg.model).positions(cfg)


def step_size(cfg) -> str:
    """The start line's size of a step, saying what it counts: before a step runs, its real tokens
    are known only where nothing is padded (GPT pretraining); SFT rows and T5 samples are padded,
    so there it is positions, and the log lines count the real tokens."""
    from plugtron.providers.model_kind import kind_for

    kind = kind_for(cfg.model)
    seq = f"seq length {cfg.model.seq_length}" + (f" (decoder {cfg.model.seq_length_dec})" if kind.name == "t5" else "")
    n = positions_per_step(cfg)
    if kind.name == "t5" or hasattr(cfg.dataset, "dataset_root"):
        return f"{seq}, {n:,} positions per step (padding included; real tokens are counted as they train)"
    return f"{seq}, {n:,} tokens per step"


class TokenCount:
    """Real (non-padding) tokens over a run of steps, summed on the device (no per-step sync):
    steps without a count (GPT pretraining: nothing padded) count all their positions."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.reset()

    @property
    def per_step(self) -> int:
        """Positions of one global batch (read when counting: a bare config without them works until then)."""
        return positions_per_step(self.cfg)

    def reset(self) -> None:
        self.device_sum, self.full_steps = None, 0

    def add(self, metrics: StepMetrics) -> None:
        if metrics.real_tokens is None:
            self.full_steps += 1
        else:
            t = metrics.real_tokens.detach()
            self.device_sum = t if self.device_sum is None else self.device_sum + t

    def total(self) -> torch.Tensor:
        """The count as a 1-element float64 CPU tensor (a sync point when some are on the device)."""
        extra = 0.0 if self.device_sum is None else float(self.device_sum.double().cpu())
        return torch.tensor([self.full_steps * self.per_step + extra], dtype=torch.float64)


class LogWindow:
    """Accumulates loss on device between log lines (no per-step sync) and builds the log record."""

    def __init__(self, cfg, state, clock=time.perf_counter):
        self.cfg, self.state, self.clock = cfg, state, clock
        self.start = self.last = clock()
        self.start_iter = self.last_iter = state.iteration
        self.loss_sum: Optional[torch.Tensor] = None
        self.loss_n = 0
        self.step_losses: List[torch.Tensor] = []  # each step's loss since the last flush (no sync until then)
        self.grad_norm = None
        self.tokens = TokenCount(cfg)  # real tokens since the last flush
        self.lr: Optional[float] = None  # the rate the window's last step used
        # When the last ETA_WINDOW steps ended: the ETA is their mean step time, so one slow step
        # (a save, an eval, a GC pause) moves it by 1/ETA_WINDOW, and the start-up steps age out.
        self.step_ends = deque([self.start], maxlen=ETA_WINDOW + 1)

    def add(self, metrics: StepMetrics) -> None:
        if metrics.loss is not None:
            self.loss_sum = metrics.loss.detach() if self.loss_sum is None else self.loss_sum + metrics.loss.detach()
            self.loss_n += 1
            self.step_losses.append(metrics.loss.detach().reshape(()))
        self.grad_norm = metrics.grad_norm
        self.tokens.add(metrics)
        self.lr = metrics.lr
        self.step_ends.append(self.clock())

    def eta_s(self) -> float:
        """Seconds to ``train_iters`` at the mean step time of the last ``ETA_WINDOW`` steps."""
        ends = self.step_ends
        per_step = (ends[-1] - ends[0]) / max(len(ends) - 1, 1)
        return per_step * max(self.cfg.train.train_iters - self.state.iteration, 0)

    def first_step_line(self) -> str:
        """The console line after the run's first step, long before the first ``log_interval``:
        that training runs, its first loss (a sync point, and collective over the pipeline group:
        every rank calls it) and a first ETA (from one step, warm-up included: an overestimate)."""
        from plugtron.training.step import broadcast_from_last_stage

        loss = torch.tensor(float("nan")) if self.loss_sum is None else (self.loss_sum / self.loss_n).float().cpu()
        loss = float(broadcast_from_last_stage(loss.reshape(1).double())[0])
        t = self.cfg.train
        step = self.step_ends[-1] - self.step_ends[0]
        return (f"first step done: iteration {self.state.iteration}/{t.train_iters} | loss {loss:.4f} | "
                f"{step * 1000:.0f} ms/step | eta ~{self.eta_s():.0f}s | "
                f"progress lines every {self.cfg.logger.log_interval} iterations")

    def flush(self) -> Dict[str, Any]:
        """The record for ``on_log`` (mean loss since the last flush); starts a new window.
        Collective over the pipeline group (the loss comes from the last stage) and a sync point."""
        from plugtron.training.step import broadcast_from_last_stage

        now = self.clock()
        steps = self.state.iteration - self.last_iter
        mean = (self.loss_sum / self.loss_n).float().cpu() if self.loss_n else torch.tensor(float("nan"))
        # the window's real tokens and each step's loss ride along (one broadcast, steps + 2 numbers):
        # the metrics file keeps every loss
        per_step = torch.full((steps,), float("nan"), dtype=torch.float64)
        if self.step_losses:
            got = torch.stack(self.step_losses[-steps:]).double().cpu() if steps else per_step
            per_step[steps - got.numel():] = got
        values = broadcast_from_last_stage(torch.cat([mean.reshape(1).double(), self.tokens.total(), per_step]))  # sync point, log steps only
        loss, tokens, step_losses = float(values[0]), int(values[1]), values[2:].tolist()
        positions = steps * self.tokens.per_step
        step_time = (now - self.last) / max(steps, 1)
        rec = {
            "iteration": self.state.iteration,
            "loss": loss,
            # the rate the last step used (the scheduler has already moved on to the next step's)
            "lr": self.lr if self.lr is not None else self.state.step_lr(),
            "grad_norm": None if self.grad_norm is None else float(self.grad_norm),
            "tokens_per_sec": tokens / (now - self.last) if steps and now > self.last else 0.0,  # real tokens only
            "tokens": tokens,  # real (non-padding) tokens of the window's steps
            "padding_tokens": positions - tokens,
            "step_time_s": step_time,
            "elapsed_s": now - self.start,
            "eta_s": self.eta_s(),
            "skipped_iters": self.state.skipped_train_iterations,
            "step_losses": step_losses,  # iterations last_iter + 1 .. iteration
        }
        self.last, self.last_iter, self.loss_sum, self.loss_n = now, self.state.iteration, None, 0
        self.step_losses = []
        self.tokens.reset()
        return rec


_LOOP_KEYS = frozenset(("iteration", "loss", "lr", "grad_norm", "tokens_per_sec", "step_time_s", "elapsed_s", "eta_s",
                        "skipped_iters", "step_losses", "tokens", "padding_tokens"))


def format_log(rec: Dict[str, Any], train_iters: int) -> str:
    """The console line of a log record; plugins' metrics (``collect_metrics``) follow the loop's."""
    gn = "n/a" if rec["grad_norm"] is None else f"{rec['grad_norm']:.3f}"
    padding = rec.get("padding_tokens") or 0
    all_positions = (rec.get("tokens") or 0) + padding
    excluded = f" ({100 * padding / all_positions:.0f}% padding excluded)" if padding > 0 and all_positions else ""
    extra = "".join(f" | {k} {v:.4g}" if isinstance(v, float) else f" | {k} {v}" for k, v in rec.items() if k not in _LOOP_KEYS)
    return (
        f"iter {rec['iteration']:>6}/{train_iters} | loss {rec['loss']:.4f} | lr {rec['lr']:.3e} | "
        f"grad_norm {gn} | {rec['tokens_per_sec']:,.0f} tok/s{excluded} | {rec['step_time_s'] * 1000:.0f} ms/step | "
        f"elapsed {rec['elapsed_s']:.0f}s | eta {rec['eta_s']:.0f}s" + extra
    )
