"""Building a run: process groups, seeds, model chunks, DDP, optimizer, scheduler."""

from __future__ import annotations

import logging
import random
from typing import List

import numpy as np
import torch

log = logging.getLogger("plugtron")


def init_distributed(cfg) -> None:
    """torch.distributed (env:// under torchrun, an in-memory store for one process) and Megatron's
    model-parallel groups. CPU shims are applied first when CUDA is absent."""
    from megatron.core import parallel_state as ps

    from plugtron import distributed

    distributed.init_process_group(cfg.dist.distributed_backend, cfg.dist.distributed_timeout_minutes)
    m = cfg.model
    ps.initialize_model_parallel(
        tensor_model_parallel_size=m.tensor_model_parallel_size,
        pipeline_model_parallel_size=m.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=m.virtual_pipeline_model_parallel_size,
        context_parallel_size=m.context_parallel_size,
        expert_model_parallel_size=m.expert_model_parallel_size,
        expert_tensor_parallel_size=m.expert_tensor_parallel_size,
        num_distributed_optimizer_instances=cfg.ddp.num_distributed_optimizer_instances,
        use_sharp=cfg.dist.use_sharp,
        nccl_communicator_config_path=cfg.dist.nccl_communicator_config_path,
        distributed_timeout_minutes=cfg.dist.distributed_timeout_minutes,
        order="tp-pp-dp" if cfg.dist.use_tp_pp_dp_mapping else "tp-cp-ep-dp-pp",
        create_gloo_process_groups=cfg.dist.use_gloo_process_groups,
    )
    start_rerun_state_machine()


def start_rerun_state_machine() -> None:
    """Megatron's rerun state machine, explicitly and disabled (plugtron's ``nan_guard`` checks losses
    and grad norms). Megatron's DDP consults it when ``ddp.check_for_nan_in_grad`` is on (the SFT and
    PEFT recipes); implicitly initialized there, it logs two WARNING lines no user can act on. Its
    own "initialized" line is muted here; ``--verbose`` shows it."""
    from megatron.core import rerun_state_machine as rsm

    rsm.destroy_rerun_state_machine()  # a previous in-process run's
    quiet = logging.getLogger(rsm.__name__)
    level = quiet.level
    if not logging.getLogger("plugtron").isEnabledFor(logging.DEBUG):
        quiet.setLevel(logging.ERROR)
    try:
        rsm.initialize_rerun_state_machine(mode=rsm.RerunMode.DISABLED)
    finally:
        quiet.setLevel(level)


def apply_logging_level(cfg) -> None:
    """``logger.logging_level`` for plugtron's logger: as given on rank 0; other ranks never go below
    WARNING (N copies of every info line would drown the one that matters)."""
    from plugtron import distributed

    level = cfg.logger.logging_level
    logging.getLogger("plugtron").setLevel(level if distributed.is_rank0() else max(level, logging.WARNING))


def destroy_distributed() -> None:
    """Megatron's groups, then the default group, dropping every reference plugtron knows to
    outlive them. Each gloo group runs 3 threads until its last reference goes, so without this
    every in-process run (tests, notebooks) would leave idle threads behind: Megatron's
    ``destroy_model_parallel`` leaves two of its globals set (the intra-partial data-parallel
    groups), and the ``lru_cache`` on its RoPE ``forward`` keys on the rotary module and its
    context-parallel group (up to 32 entries, across runs)."""
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    from plugtron import distributed

    ps.destroy_model_parallel()
    for name, value in list(vars(ps).items()):
        if name.isupper() and isinstance(value, dist.ProcessGroup):
            setattr(ps, name, None)
    clear_rope_caches()
    distributed.destroy_process_group()


def clear_rope_caches() -> None:
    from megatron.core.models.common.embeddings import rotary_pos_embedding, yarn_rotary_pos_embedding

    for cls in (rotary_pos_embedding.RotaryEmbedding, yarn_rotary_pos_embedding.YarnRotaryEmbedding):
        clear = getattr(cls.forward, "cache_clear", None)
        if clear is not None:
            clear()


def set_seeds(cfg) -> None:
    """``seed + 100 * pipeline rank`` everywhere (Megatron-LM's rule): tensor-parallel ranks share
    the seed (Megatron's RNG tracker offsets the TP-sharded streams itself)."""
    from megatron.core import parallel_state as ps
    from megatron.core import tensor_parallel

    seed = cfg.rng.seed + 100 * ps.get_pipeline_model_parallel_rank()
    if cfg.rng.data_parallel_random_init:
        seed += 10 * ps.get_data_parallel_rank()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    tensor_parallel.model_parallel_cuda_manual_seed(seed)


def build_model(cfg) -> List[torch.nn.Module]:
    """This rank's model chunks (one per virtual pipeline stage), precision-wrapped and in DDP."""
    return wrap_chunks(cfg, build_chunks(cfg))


def build_chunks(cfg) -> List[torch.nn.Module]:
    """This rank's bare Megatron model chunks (one per virtual pipeline stage), on the CPU."""
    from megatron.core import parallel_state as ps
    from megatron.core import tensor_parallel

    provider = cfg.model
    vpp = provider.virtual_pipeline_model_parallel_size if ps.get_pipeline_model_parallel_world_size() > 1 else None
    chunks = []
    for vp_stage in range(vpp or 1):
        stage = vp_stage if vpp else None
        chunk = provider.provide(
            pre_process=ps.is_pipeline_first_stage(ignore_virtual=False, vp_stage=stage),
            post_process=ps.is_pipeline_last_stage(ignore_virtual=False, vp_stage=stage),
            vp_stage=stage,
        )
        chunk.model_type = getattr(chunk, "model_type", None)
        for p in chunk.parameters():
            tensor_parallel.set_defaults_if_not_set_tensor_model_parallel_attributes(p)
        chunks.append(chunk)
    return chunks


def wrap_chunks(cfg, chunks: List[torch.nn.Module]) -> List[torch.nn.Module]:
    """Chunks on the GPU (if any), in the precision wrapper for fp16/bf16, then in DDP (which
    allocates gradient buffers for the parameters that require a gradient)."""
    from megatron.core.distributed import DistributedDataParallel
    from megatron.core.transformer.module import Float16Module

    provider = cfg.model
    if torch.cuda.is_available():
        chunks = [c.cuda(torch.cuda.current_device()) for c in chunks]
    if provider.fp16 or provider.bf16:
        # Megatron trains half precision only inside Float16Module (fp32 main params live in the
        # optimizer); without it matmuls see mixed dtypes.
        chunks = [Float16Module(provider, c) for c in chunks]
    return [
        DistributedDataParallel(config=provider, ddp_config=cfg.ddp, module=c, disable_bucketing=i > 0)
        for i, c in enumerate(chunks)
    ]


def build_optimizer(cfg, model):
    """Megatron's optimizer (distributed or not, with fp32 main params for half precision) and
    ``OptimizerParamScheduler`` driven in samples, as Megatron-LM does."""
    from megatron.core.distributed import finalize_model_grads
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    from plugtron import optimizers
    from plugtron.training.fused_adam import use_fused_adam

    optimizer = optimizers.build(cfg, model)  # the registered optimizer (plugtron.optimizers)
    use_fused_adam(optimizer)  # torch's fused kernel where Megatron fell back to torch's Adam
    s, o = cfg.scheduler, cfg.optimizer
    scheduler = OptimizerParamScheduler(
        optimizer,
        init_lr=s.lr_warmup_init,
        max_lr=o.lr,
        min_lr=o.min_lr,
        lr_warmup_steps=s.lr_warmup_steps,
        lr_decay_steps=s.lr_decay_steps,
        lr_decay_style=s.lr_decay_style,
        start_wd=s.start_weight_decay,
        end_wd=s.end_weight_decay,
        wd_incr_steps=s.wd_incr_steps,
        wd_incr_style=s.weight_decay_incr_style,
        use_checkpoint_opt_param_scheduler=s.use_checkpoint_opt_param_scheduler,
        override_opt_param_scheduler=s.override_opt_param_scheduler,
        wsd_decay_steps=s.wsd_decay_steps,
        lr_wsd_decay_style=s.lr_wsd_decay_style,
    )
    # Wire Megatron's schedule to DDP: gradient sync (and PP embedding sync) after the last
    # microbatch, loss scaling for fp16, no-sync during accumulation.
    mc = cfg.model
    mc.finalize_model_grads_func = finalize_model_grads
    mc.grad_scale_func = optimizer.scale_loss
    mc.no_sync_func = model[0].no_sync if len(model) == 1 else [m.no_sync for m in model]
    if cfg.ddp.overlap_grad_reduce and len(model) > 1:
        mc.grad_sync_func = [m.start_grad_sync for m in model]
    if cfg.ddp.overlap_param_gather and cfg.optimizer.use_distributed_optimizer:
        mc.param_sync_func = [m.start_param_sync for m in model] if len(model) > 1 else model[0].start_param_sync
    return optimizer, scheduler


_WIRED = ("finalize_model_grads_func", "grad_scale_func", "no_sync_func", "grad_sync_func", "param_sync_func")


def unwire(cfg) -> None:
    """Undo ``build_optimizer``'s wiring: the config outlives the run (the caller holds it), and
    through these bound methods it would keep the run's model, optimizer and process groups alive."""
    for name in _WIRED:
        setattr(cfg.model, name, None)
