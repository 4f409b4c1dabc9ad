"""``ConfigContainer.validate()``: derivations and cross-section checks.

Every check appends to one list; all problems are raised together as a ``ConfigError``. Machine
checks (CUDA-only features on a CPU) are not here: a GPU config must still ``config show`` on a
laptop. They live in ``plugtron.platform.machine``.
"""

from __future__ import annotations

from typing import List

from plugtron.config.precision import FP8_MODEL_FIELDS, MixedPrecisionConfig
from plugtron.errors import ConfigError


def _apply_mixed_precision(cfg, mp: MixedPrecisionConfig) -> None:
    import torch

    from plugtron.config.converter import to_dtype

    params = to_dtype(mp.params_dtype) or (
        torch.bfloat16 if mp.bf16 else torch.float16 if mp.fp16 else torch.float32
    )
    for target in (cfg.model, cfg.optimizer):
        target.fp16, target.bf16, target.params_dtype = mp.fp16, mp.bf16, params
    cfg.model.pipeline_dtype = to_dtype(mp.pipeline_dtype) or params
    cfg.model.autocast_dtype = params
    if mp.fp8 is not None:
        for name in FP8_MODEL_FIELDS:
            setattr(cfg.model, name, getattr(mp, name))
        cfg.model.fp8_param = mp.fp8_param_gather if mp.fp8_param is None else mp.fp8_param
        cfg.ddp.fp8_param_gather = mp.fp8_param_gather
        cfg.ddp.reuse_grad_buf_for_mxfp8_param_ag = mp.reuse_grad_buf_for_mxfp8_param_ag
        cfg.optimizer.fp8_recipe = mp.fp8_recipe
        cfg.optimizer.reuse_grad_buf_for_mxfp8_param_ag = mp.reuse_grad_buf_for_mxfp8_param_ag
    opt = cfg.optimizer
    opt.loss_scale, opt.initial_loss_scale = mp.loss_scale, mp.initial_loss_scale
    opt.min_loss_scale, opt.loss_scale_window, opt.hysteresis = mp.min_loss_scale, mp.loss_scale_window, mp.hysteresis
    cfg.ddp.grad_reduce_in_fp32 = mp.grad_reduce_in_fp32


def _derive_scheduler(cfg, problems: List[str]) -> None:
    s, t = cfg.scheduler, cfg.train
    gbs = t.global_batch_size
    decay_iters = s.lr_decay_iters if s.lr_decay_iters is not None else t.train_iters
    if s.lr_warmup_fraction is not None:
        if not 0.0 <= s.lr_warmup_fraction <= 1.0:
            problems.append(f"scheduler.lr_warmup_fraction: expected a value in [0, 1], got {s.lr_warmup_fraction}")
        warmup_iters = int(s.lr_warmup_fraction * decay_iters)
        if s.lr_warmup_iters:
            problems.append("scheduler: set lr_warmup_iters or lr_warmup_fraction, not both")
    else:
        warmup_iters = s.lr_warmup_iters
    if warmup_iters >= decay_iters:  # Megatron's scheduler asserts warmup < decay
        problems.append(
            f"scheduler.lr_warmup_iters: warmup ({warmup_iters} iters) must be shorter than decay "
            f"({decay_iters} iters; lr_decay_iters defaults to train.train_iters)"
        )
    s.lr_warmup_steps = warmup_iters * gbs
    s.lr_decay_steps = decay_iters * gbs
    s.wd_incr_steps = t.train_iters * gbs
    if s.lr_decay_style == "WSD":
        if s.lr_wsd_decay_iters is None:
            problems.append("scheduler.lr_wsd_decay_iters: required when lr_decay_style is 'WSD'")
        else:
            s.wsd_decay_steps = s.lr_wsd_decay_iters * gbs
    opt = cfg.optimizer
    if opt.lr is None:
        problems.append("optimizer.lr: required (e.g. optimizer.lr=3e-4)")
    if opt.min_lr is None:
        opt.min_lr = 0.0
    if opt.lr is not None and opt.min_lr > opt.lr:
        problems.append(f"optimizer.min_lr: {opt.min_lr} is larger than optimizer.lr {opt.lr}")
    if s.start_weight_decay is None:
        s.start_weight_decay = opt.weight_decay
    if s.end_weight_decay is None:
        s.end_weight_decay = opt.weight_decay


def _derive_parallel(cfg, world_size: int, problems: List[str]) -> None:
    m, t = cfg.model, cfg.train
    tp, pp, cp = m.tensor_model_parallel_size, m.pipeline_model_parallel_size, m.context_parallel_size
    for name, v in (("tensor_model_parallel_size", tp), ("pipeline_model_parallel_size", pp),
                    ("context_parallel_size", cp), ("expert_model_parallel_size", m.expert_model_parallel_size)):
        if v < 1:
            problems.append(f"model.{name}: expected >= 1, got {v}")
            return
    model_parallel = tp * pp * cp
    cfg.world_size = world_size
    if world_size % model_parallel:
        problems.append(
            f"model: world size {world_size} is not divisible by TP x PP x CP = {tp} x {pp} x {cp} = {model_parallel}"
        )
        return
    dp = world_size // model_parallel
    cfg.data_parallel_size = dp
    if m.expert_model_parallel_size > 1 and (dp * cp) % m.expert_model_parallel_size:
        problems.append(
            f"model.expert_model_parallel_size: {m.expert_model_parallel_size} does not divide DP x CP = {dp * cp}"
        )
    if t.micro_batch_size < 1 or t.global_batch_size < 1:
        problems.append("train: micro_batch_size and global_batch_size must be >= 1")
        return
    if t.global_batch_size % (t.micro_batch_size * dp):
        problems.append(
            f"train.global_batch_size: {t.global_batch_size} is not divisible by micro_batch_size x "
            f"data-parallel size = {t.micro_batch_size} x {dp} = {t.micro_batch_size * dp}"
        )
    else:
        cfg.num_microbatches = t.global_batch_size // (t.micro_batch_size * dp)
    heads = m.num_attention_heads
    if heads <= 0:
        problems.append("model.num_attention_heads: required (> 0)")
    elif heads % tp:
        problems.append(f"model.num_attention_heads: {heads} is not divisible by tensor_model_parallel_size {tp}")
    if m.num_query_groups is not None and m.num_query_groups % tp:
        problems.append(f"model.num_query_groups: {m.num_query_groups} is not divisible by tensor_model_parallel_size {tp}")
    if m.num_layers <= 0:
        problems.append("model.num_layers: required (> 0)")
    if m.hidden_size <= 0:
        problems.append("model.hidden_size: required (> 0)")
    vpp = m.virtual_pipeline_model_parallel_size
    uneven = m.num_layers_in_first_pipeline_stage is not None or m.num_layers_in_last_pipeline_stage is not None
    if m.num_layers > 0 and not uneven and m.pipeline_model_parallel_layout is None:
        chunks = pp * (vpp or 1)
        if m.num_layers % chunks:
            problems.append(
                f"model.num_layers: {m.num_layers} is not divisible by pipeline stages x virtual stages = {chunks}"
            )
    if vpp is not None and pp == 1:
        problems.append("model.virtual_pipeline_model_parallel_size: needs pipeline_model_parallel_size > 1")
    seq_field = "sequence_length" if hasattr(cfg.dataset, "sequence_length") else "seq_length"
    if getattr(cfg.dataset, seq_field) != m.seq_length:
        problems.append(
            f"dataset.{seq_field}: {getattr(cfg.dataset, seq_field)} differs from model.seq_length {m.seq_length}"
        )


def _derive_p2p(cfg) -> None:
    """Without CUDA the backend is gloo, where virtual pipeline with batched p2p runs but does not
    learn (measured: with two stages prev and next are the same rank and the batched sends/receives
    pair up wrongly): batch_p2p_comm is switched off there, with a warning."""
    import torch

    m = cfg.model
    if m.virtual_pipeline_model_parallel_size and m.batch_p2p_comm and not torch.cuda.is_available():
        import logging

        logging.getLogger("plugtron").warning(
            "virtual pipeline on gloo: setting model.batch_p2p_comm=false (batched p2p does not learn on gloo)"
        )
        m.batch_p2p_comm = False


def _derive_vocab(cfg, problems: List[str]) -> None:
    from plugtron.providers.model_kind import kind_for

    tok, m = cfg.tokenizer, cfg.model
    if m.vocab_size is not None:
        return
    extra = kind_for(m).extra_vocab(m)  # e.g. T5's sentinel ids above the tokenizer's
    if tok.tokenizer_type == "ByteLevelTokenizer":
        m.vocab_size = 257 + extra  # 256 byte values + EOD
    elif tok.tokenizer_type == "NullTokenizer":
        if tok.vocab_size is None:
            problems.append("tokenizer.vocab_size: required for NullTokenizer")
        else:
            m.vocab_size = tok.vocab_size + 1 + extra  # + EOD
    else:
        # File-backed tokenizers: load the (local) files to read the size. Only when model.vocab_size
        # is unset, so `config show` of a cluster config with an explicit size works on a laptop.
        from plugtron.data.tokenizers import build_tokenizer
        from plugtron.errors import DataError

        try:
            m.vocab_size = build_tokenizer(tok).vocab_size + extra
        except DataError as err:
            problems.append(f"model.vocab_size: unset, so it is read from the tokenizer, which failed: {err}")


def _check_checkpoint(ck, world_size: int, problems: List[str]) -> None:
    if ck.save_interval is not None and not ck.save:
        problems.append("checkpoint.save_interval: set checkpoint.save (the directory) too")
    if ck.ckpt_format == "torch":
        if world_size > 1:
            problems.append(f"checkpoint.ckpt_format: 'torch' is single-process only (world size {world_size}); use 'torch_dist'")
        if ck.async_save:
            problems.append("checkpoint.async_save: needs ckpt_format 'torch_dist'")
    for key in ("save", "load", "pretrained_checkpoint"):
        path = getattr(ck, key)
        if path is not None and not str(path).strip():
            problems.append(f"checkpoint.{key}: empty path; give a directory or null")


def validate(cfg, world_size: int) -> None:
    problems: List[str] = []
    t = cfg.train
    if t.train_iters < 0:
        problems.append(f"train.train_iters: expected >= 0, got {t.train_iters}")
    if t.eval_interval is not None and t.eval_interval < 0:
        problems.append(f"train.eval_interval: expected >= 0 or null, got {t.eval_interval}")
    if cfg.logger.log_interval < 1:
        problems.append(f"logger.log_interval: expected >= 1, got {cfg.logger.log_interval}")
    if t.manual_gc_interval < 0:
        problems.append(f"train.manual_gc_interval: expected >= 0, got {t.manual_gc_interval}")
    try:
        mp = cfg.resolved_mixed_precision()
    except ConfigError as exc:
        problems.extend(exc.problems)
        mp = None
    if mp is not None:
        if sum((mp.fp16, mp.bf16)) > 1:
            problems.append("mixed_precision: fp16 and bf16 are mutually exclusive")
        if mp.fp8_param_gather and mp.fp8_recipe == "mxfp8" and not mp.reuse_grad_buf_for_mxfp8_param_ag:
            problems.append("mixed_precision.reuse_grad_buf_for_mxfp8_param_ag: must be true when fp8_param_gather "
                            "is true with the mxfp8 recipe (Megatron gathers the mxfp8 params through the grad buffer)")
        _apply_mixed_precision(cfg, mp)
    if cfg.model.pipeline_model_parallel_size > 1 and cfg.model.pipeline_dtype is None:
        cfg.model.pipeline_dtype = cfg.model.params_dtype
    cfg.ddp.use_distributed_optimizer = cfg.optimizer.use_distributed_optimizer
    _derive_vocab(cfg, problems)
    _derive_parallel(cfg, world_size, problems)
    _derive_scheduler(cfg, problems)
    _derive_p2p(cfg)
    from plugtron.providers.model_kind import kind_for

    problems.extend(kind_for(cfg.model).problems(cfg))  # e.g. T5: no PP, decoder length fits the targets
    if hasattr(cfg.dataset, "problems"):  # FinetuningDatasetConfig: packing needs micro_batch_size 1, ...
        problems.extend(cfg.dataset.problems(cfg.train))
    if cfg.peft is not None and not cfg.checkpoint.pretrained_checkpoint:
        problems.append("peft: requires checkpoint.pretrained_checkpoint (the model the adapters are trained on)")
    if cfg.dist.lazy_init:
        problems.append("dist.lazy_init: not supported by plugtron (models are built eagerly)")
    ck = cfg.checkpoint
    if ck.save_interval is not None and ck.save_interval < 1:
        problems.append(f"checkpoint.save_interval: expected >= 1 or null, got {ck.save_interval}")
    if ck.most_recent_k == 0 or ck.most_recent_k < -1:
        problems.append(f"checkpoint.most_recent_k: expected -1 (keep all) or >= 1, got {ck.most_recent_k}")
    _check_checkpoint(ck, world_size, problems)
    if not problems:
        try:
            cfg.model.finalize()
        except (ValueError, AssertionError, TypeError) as exc:
            problems.append(f"model: {exc}")
    if problems:
        raise ConfigError(problems)
