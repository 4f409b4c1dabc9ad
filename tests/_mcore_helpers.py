"""Shared helpers for tests that drive Megatron-Core directly on CPU (gloo).

- ``single_process(...)``: context manager, a world of 1 over a ``HashStore`` plus
  ``initialize_model_parallel``; both torn down on exit.
- ``spawn(fn, nprocs, *args)``: run ``fn(rank, world_size, *args)`` in gloo worker processes on
  127.0.0.1 (``fn`` must be importable: a module-level function).
- ``tiny_gpt_config`` / ``build_tiny_gpt`` / ``wrap_ddp`` / ``build_optimizer`` / ``fixed_batch`` /
  ``train_steps``: a tiny GPT (2 layers, hidden 64, 4 heads, vocab 256, seq 32) trained the way
  Megatron-LM does it (DDP, ``get_megatron_optimizer``, ``get_forward_backward_func``).
"""

from __future__ import annotations

import contextlib
import os
import socket

import torch
import torch.distributed as dist

from plugtron.platform import cpu_shims

VOCAB = 256
SEQ = 32
MICRO_BATCH = 4


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_parallel(seed: int = 1234, **parallel_kwargs) -> None:
    """initialize_model_parallel + seeds (CPU generator and Megatron's TP RNG tracker)."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    parallel_state.initialize_model_parallel(**parallel_kwargs)
    torch.manual_seed(seed)
    model_parallel_cuda_manual_seed(seed)


def destroy_parallel() -> None:
    from megatron.core import parallel_state

    parallel_state.destroy_model_parallel()


@contextlib.contextmanager
def single_process(seed: int = 1234, **parallel_kwargs):
    """A one-process gloo world with Megatron's parallel state; torn down on exit."""
    cpu_shims.apply()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        init_parallel(seed, **parallel_kwargs)
        try:
            yield
        finally:
            destroy_parallel()
    finally:
        dist.destroy_process_group()


def _spawned(rank: int, fn, world_size: int, port: int, args: tuple) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    cpu_shims.apply()
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
    )
    try:
        fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def spawn(fn, nprocs: int, *args) -> None:
    """Run ``fn(rank, world_size, *args)`` in ``nprocs`` gloo processes (raises if one fails)."""
    import torch.multiprocessing as mp

    mp.spawn(_spawned, args=(fn, nprocs, free_port(), args), nprocs=nprocs, join=True)


def tiny_gpt_config(**overrides):
    from megatron.core.transformer import TransformerConfig

    kwargs = dict(
        num_layers=2,
        hidden_size=64,
        num_attention_heads=4,
        use_cpu_initialization=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )
    kwargs.update(overrides)
    if kwargs.get("bf16"):
        kwargs.setdefault("params_dtype", torch.bfloat16)
    if kwargs.get("fp16"):
        kwargs.setdefault("params_dtype", torch.float16)
    if kwargs.get("pipeline_model_parallel_size", 1) > 1:
        kwargs.setdefault("pipeline_dtype", kwargs.get("params_dtype", torch.float32))
    return TransformerConfig(**kwargs)


def build_tiny_gpt(config):
    """GPTModel (this rank's pipeline stage) on the local (non-TE) layer spec, wrapped in
    Float16Module when bf16/fp16."""
    from megatron.core import parallel_state
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.module import Float16Module

    spec = get_gpt_layer_local_spec(num_experts=config.num_moe_experts, moe_grouped_gemm=False)
    model = GPTModel(config=config, transformer_layer_spec=spec, vocab_size=VOCAB,
                     max_sequence_length=SEQ,
                     pre_process=parallel_state.is_pipeline_first_stage(),
                     post_process=parallel_state.is_pipeline_last_stage())
    if config.bf16 or config.fp16:
        model = Float16Module(config, model)
    return model


def wrap_ddp(model, config, **ddp_overrides):
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig

    ddp_config = DistributedDataParallelConfig(
        grad_reduce_in_fp32=bool(config.bf16 or config.fp16), **ddp_overrides
    )
    return DistributedDataParallel(config=config, ddp_config=ddp_config, module=model)


def build_optimizer(model, config, lr: float = 3e-3, clip_grad: float = 1.0):
    from megatron.core.distributed import finalize_model_grads
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

    opt_config = OptimizerConfig(
        optimizer="adam", lr=lr, weight_decay=0.0, clip_grad=clip_grad,
        bf16=config.bf16, fp16=config.fp16, params_dtype=config.params_dtype,
        use_distributed_optimizer=model.ddp_config.use_distributed_optimizer,
    )
    optimizer = get_megatron_optimizer(opt_config, [model])
    # As Megatron-LM's training loop wires them.
    config.finalize_model_grads_func = finalize_model_grads
    config.grad_scale_func = optimizer.scale_loss
    config.no_sync_func = model.no_sync
    return optimizer


def fixed_batch(seed: int = 0, batch: int = MICRO_BATCH, seq: int = SEQ):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (batch, seq + 1), generator=gen)
    return {
        "tokens": tokens[:, :-1].contiguous(),
        "labels": tokens[:, 1:].contiguous(),
        "loss_mask": torch.ones(batch, seq),
        "position_ids": torch.arange(seq).unsqueeze(0).expand(batch, -1).contiguous(),
    }


def _forward_step(data_iterator, model):
    batch = next(data_iterator)
    output = model(batch["tokens"], batch["position_ids"], attention_mask=None,
                   labels=batch["labels"])
    mask = batch["loss_mask"]

    def loss_func(per_token_loss):
        loss = (per_token_loss.float() * mask).sum() / mask.sum()
        return loss, {"lm loss": loss.detach()}

    return output, loss_func


def train_steps(model, optimizer, batch, steps: int) -> list[float]:
    """``steps`` optimizer steps on ``batch`` (one micro-batch each); returns the losses
    (empty except on the last pipeline stage)."""
    from megatron.core.pipeline_parallel import get_forward_backward_func

    forward_backward = get_forward_backward_func()
    losses = []
    for _ in range(steps):
        model.zero_grad_buffer()
        optimizer.zero_grad()
        reduced = forward_backward(
            forward_step_func=_forward_step, data_iterator=iter([batch]), model=[model],
            num_microbatches=1, seq_length=batch["tokens"].shape[1],
            micro_batch_size=batch["tokens"].shape[0], forward_only=False,
        )
        ok, _grad_norm, _zeros = optimizer.step()
        assert ok, "optimizer step skipped"
        if reduced:
            losses.append(float(reduced[0]["lm loss"]))
    return losses
