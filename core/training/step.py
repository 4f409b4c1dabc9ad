"""One training iteration and one evaluation, on Megatron-Core's forward/backward schedules."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from plugtron.training.forward import forward_step, loss_func, loss_function, thd_packed_seq_params  # noqa: F401 (re-exported)


def mean_loss(losses_reduced: List[Dict[str, torch.Tensor]], with_tokens: bool = False):
    """The loss that was trained, over the data-parallel ranks (collective over the DP group, last
    pipeline stage only; None on other stages): per token (``[sum, tokens]`` reports), the token
    mean over the global batch; otherwise the mean of the micro batches' means.

    ``with_tokens``: returns ``(loss, real_tokens)``, ``real_tokens`` the global batch's non-padding
    positions (a 0-d float64 tensor on the device, summed in the loss's own all-reduce: no extra
    collective, no sync) when the batches report them (SFT), else None (every position is a token)."""
    from megatron.core import parallel_state as ps

    if not losses_reduced:
        return (None, None) if with_tokens else None
    reports = torch.stack([d["lm loss"].float() for d in losses_reduced])
    per_token = reports.dim() == 2  # one [sum, tokens] pair per micro batch
    values = reports.sum(0) if per_token else reports.mean().reshape(1)
    counted = with_tokens and all("real tokens" in d for d in losses_reduced)
    if counted:  # float64: token counts stay exact far beyond float32's 2**24
        real = torch.stack([d["real tokens"] for d in losses_reduced]).sum().double().reshape(1)
        values = torch.cat([values.double(), real])
    dp = ps.get_data_parallel_world_size()
    if dp > 1:
        dist.all_reduce(values, group=ps.get_data_parallel_group())
    loss = (values[0] / values[1].clamp(min=1.0)) if per_token else values[0] / dp
    loss = loss.float()
    if not with_tokens:
        return loss
    return loss, (values[-1] if counted else None)


def _all_training(module: torch.nn.Module) -> bool:
    """True when ``module`` and every submodule are in training mode (reads flags only)."""
    stack = [module]
    while stack:
        m = stack.pop()
        if m is None:  # a submodule slot registered as None
            continue
        if not m.training:
            return False
        stack.extend(m._modules.values())
    return True


def ensure_train_mode(chunk: torch.nn.Module) -> None:
    """Every module of ``chunk`` in training mode, as ``chunk.train()`` leaves it.

    ``Module.train()`` sets the flag through ``Module.__setattr__`` on each of the ~80 submodules
    (~0.3 ms per step on the tiny recipe, the largest piece of plugtron's per-step overhead), and on
    almost every step nothing has changed since the last one. Reading the flags costs ~1/10 of that;
    ``train()`` runs only when a module is in eval mode (after something switched it), so the
    modules end up exactly as before."""
    if not _all_training(chunk):
        chunk.train()


def _schedule_args(cfg) -> Dict[str, Any]:
    """The model kind's forward step and sequence lengths for Megatron's schedule (GPT: the
    decoder length is ``seq_length``; T5: ``seq_length_dec``)."""
    from plugtron.providers.model_kind import kind_for

    kind = kind_for(cfg.model)
    seq, dec_seq = kind.seq_lengths(cfg)
    return dict(forward_step_func=kind.forward_step, num_microbatches=cfg.num_microbatches, seq_length=seq,
                micro_batch_size=cfg.train.micro_batch_size, decoder_seq_length=dec_seq)


def train_step(cfg, model, optimizer, scheduler, iterators, before_optimizer_step=None) -> Tuple[Optional[torch.Tensor], bool, Any, Any, Any]:
    """forward/backward over ``num_microbatches``, ``before_optimizer_step()`` (the
    ``on_before_optimizer_step`` hook), optimizer step, scheduler step.

    Returns ``(loss, update_successful, grad_norm, num_zeros, real_tokens)`` (``real_tokens``: see
    ``mean_loss``; None when every position is a token)."""
    from megatron.core.pipeline_parallel import get_forward_backward_func

    for chunk in model:
        chunk.zero_grad_buffer()
    optimizer.zero_grad()
    for chunk in model:
        ensure_train_mode(chunk)
    losses = get_forward_backward_func()(
        data_iterator=iterators if len(iterators) > 1 else iterators[0],
        model=model,
        forward_only=False,
        **_schedule_args(cfg),
    )
    if before_optimizer_step is not None:  # gradients are reduced: Megatron's schedule finalized them
        before_optimizer_step()
    update_successful, grad_norm, num_zeros = optimizer.step()
    if update_successful:
        scheduler.step(increment=cfg.train.global_batch_size)
    loss, real_tokens = mean_loss(losses, with_tokens=True)
    return loss, bool(update_successful), grad_norm, num_zeros, real_tokens


@torch.no_grad()
def evaluate(cfg, model, iterators, num_batches: int) -> float:
    """Mean loss over ``num_batches`` global batches; every rank returns the same float
    (broadcast from the last pipeline stage: a collective and a CPU-GPU sync)."""
    from megatron.core import parallel_state as ps
    from megatron.core.pipeline_parallel import get_forward_backward_func

    for chunk in model:
        chunk.eval()
    total, count = torch.zeros((), dtype=torch.float64), 0
    for _ in range(num_batches):
        losses = get_forward_backward_func()(
            data_iterator=iterators if len(iterators) > 1 else iterators[0],
            model=model,
            forward_only=True,
            **_schedule_args(cfg),
        )
        loss = mean_loss(losses)
        if loss is not None:
            total += loss.double().cpu()
        count += 1
    for chunk in model:
        chunk.train()
    result = torch.tensor([float(total) / max(count, 1)], dtype=torch.float64)
    return broadcast_from_last_stage(result)[0].item()


def broadcast_from_last_stage(t: torch.Tensor) -> torch.Tensor:
    """Give every pipeline stage the last stage's value (collective over the PP group)."""
    from megatron.core import parallel_state as ps

    if ps.get_pipeline_model_parallel_world_size() == 1:
        return t
    dev = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    buf = t.to(dev)
    dist.broadcast(buf, src=ps.get_pipeline_model_parallel_last_rank(), group=ps.get_pipeline_model_parallel_group())
    return buf.cpu()
