"""``ConfigContainer.validate()``: derivations and cross-section checks.

Every check appends to one list; all problems are raised together as a ``ConfigError``. Machine
checks (CUDA-only features on a CPU) are not here: a GPU config must still ``config show`` on a
laptop. They live in ``plugtron.platform.machine``.
"""

from __future__ import annotations

from typing import List

from plugtron.config import rules
from plugtron.config.precision import FP8_MODEL_FIELDS, MixedPrecisionConfig
from plugtron.errors import ConfigError


def getattr_path(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


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
    model_parallel = tp * pp * cp
    cfg.world_size = world_size
    if world_size % model_parallel:
        problems.append(
            f"model.tensor_model_parallel_size x pipeline_model_parallel_size x context_parallel_size = {tp} x "
            f"{pp} x {cp} = {model_parallel} does not divide the world size {world_size}"
        )
        return
    dp = world_size // model_parallel
    cfg.data_parallel_size = dp
    if m.expert_model_parallel_size > 1 and (dp * cp) % m.expert_model_parallel_size:
        problems.append(
            f"model.expert_model_parallel_size: {m.expert_model_parallel_size} does not divide DP x CP = {dp * cp}"
        )
    if t.global_batch_size % (t.micro_batch_size * dp):
        problems.append(
            f"train.global_batch_size: {t.global_batch_size} is not divisible by micro_batch_size x "
            f"data-parallel size = {t.micro_batch_size} x {dp} = {t.micro_batch_size * dp}"
        )
    else:
        cfg.num_microbatches = t.global_batch_size // (t.micro_batch_size * dp)
    heads = m.num_attention_heads
    if heads % tp:
        problems.append(f"model.num_attention_heads: {heads} is not divisible by tensor_model_parallel_size {tp}")
    if m.num_query_groups is not None:
        if m.num_query_groups % tp:
            problems.append(f"model.num_query_groups: {m.num_query_groups} is not divisible by tensor_model_parallel_size {tp}")
        if heads % m.num_query_groups:
            problems.append(f"model.num_query_groups: {m.num_query_groups} does not divide num_attention_heads {heads}")
    experts = getattr(m, "num_moe_experts", None)
    if m.expert_model_parallel_size > 1 and (experts is None or experts % m.expert_model_parallel_size):
        problems.append(f"model.expert_model_parallel_size: {m.expert_model_parallel_size} does not divide "
                        f"num_moe_experts {experts} (each expert-parallel rank holds a whole number of experts)")
    vpp = m.virtual_pipeline_model_parallel_size
    uneven = m.num_layers_in_first_pipeline_stage is not None or m.num_layers_in_last_pipeline_stage is not None
    if m.num_layers > 0 and not uneven and m.pipeline_model_parallel_layout is None:
        chunks = pp * (vpp or 1)
        # Megatron counts the embedding / the loss as one more layer of the first / last stage when asked.
        extra = int(bool(m.account_for_embedding_in_pipeline_split)) + int(bool(m.account_for_loss_in_pipeline_split))
        if (m.num_layers + extra) % chunks:
            counted = f"{m.num_layers} (+ {extra} for the embedding/loss)" if extra else str(m.num_layers)
            problems.append(
                f"model.num_layers: {counted} is not divisible by pipeline stages x virtual stages = {chunks}"
            )
    if vpp is not None and pp == 1:
        problems.append("model.virtual_pipeline_model_parallel_size: needs pipeline_model_parallel_size > 1")


def _derive_sequence_length(cfg, problems: List[str]) -> None:
    """``model.seq_length`` is the one source of truth: an unset dataset length follows it (before
    the dataset's own checks, e.g. packing, compare against it); a different one is an error."""
    field = "sequence_length" if hasattr(cfg.dataset, "sequence_length") else "seq_length"
    given, model_len = getattr(cfg.dataset, field), cfg.model.seq_length
    if given is None:
        setattr(cfg.dataset, field, model_len)
    elif given != model_len:
        problems.append(f"dataset.{field}: {given} differs from model.seq_length {model_len}; set only "
                        f"model.seq_length (dataset.{field} follows it when unset)")


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


def _tokenizer_size(tok, problems: List[str], required: bool):
    """Ids the tokenizer produces (``None`` if unknown). File-backed tokenizers are loaded from their
    (local) files; when ``model.vocab_size`` is explicit a missing file is no error here, so
    ``config show`` of a cluster config works on a laptop."""
    if tok.tokenizer_type == "ByteLevelTokenizer":
        return 257  # 256 byte values + EOD
    if tok.tokenizer_type == "NullTokenizer":
        if tok.vocab_size is None:
            problems.append("tokenizer.vocab_size: required for NullTokenizer")
            return None
        return tok.vocab_size + 1  # + EOD
    from plugtron.data.tokenizers import build_tokenizer
    from plugtron.errors import DataError

    try:
        return build_tokenizer(tok).vocab_size
    except DataError as err:
        if required:
            problems.append(f"model.vocab_size: unset, so it is read from the tokenizer, which failed: {err}")
        return None


def _derive_vocab(cfg, problems: List[str]) -> None:
    from plugtron.providers.model_kind import kind_for

    tok, m = cfg.tokenizer, cfg.model
    extra = kind_for(m).extra_vocab(m)  # e.g. T5's sentinel ids above the tokenizer's
    size = _tokenizer_size(tok, problems, required=m.vocab_size is None)
    if size is None:
        return
    if m.vocab_size is None:
        m.vocab_size = size + extra
    elif m.vocab_size < size + extra:  # an embedding lookup past the table would crash mid-step
        problems.append(f"model.vocab_size: {m.vocab_size} is smaller than the tokenizer's {size} ids"
                        + (f" + {extra} extra ids" if extra else "") + f" ({tok.tokenizer_type})")


def _check_data(cfg, problems: List[str]) -> None:
    """What the pretraining data format would refuse, without touching files (so ``config show``
    rejects what ``train`` rejects): its own ``problems(ds)``, e.g. ``indexed``'s blend weights and
    ``split``. The format's name, sort and options are checked with the registered entries."""
    ds = cfg.dataset
    if not hasattr(ds, "blend"):
        return
    from plugtron import registry
    from plugtron.data.pretraining_formats import format_name

    name = format_name(ds)
    if ds.mock and ds.data_format not in ("indexed", "mock"):
        problems.append(f"dataset.mock: true picks the data format 'mock', but dataset.data_format is "
                        f"{ds.data_format!r}; set only one of them")
    if name not in registry.entries("data_format"):
        if ds.mock:  # dataset.data_format itself is checked by the rule table
            problems.append("dataset.mock: true picks the data format 'mock', which is not registered"
                            f"{registry.suggestion('mock', 'data_format')} (plugtron registry list data_format)")
        return
    from plugtron.data.pretraining_formats import pretraining_format
    from plugtron.errors import PlugtronError

    try:
        fmt = pretraining_format(ds)
    except PlugtronError:  # wrong sort, bad options, broken entry: reported by check_registered_options
        return
    except Exception as exc:  # a package's constructor
        problems.append(f"dataset.data_format: {name!r} failed to start: {type(exc).__name__}: {exc}")
        return
    own = getattr(fmt, "problems", None)
    problems.extend(own(ds) if own is not None else [])


def _derive_loss_averaging(cfg, problems: List[str]) -> None:
    """SFT trains one token mean over the global batch unless the user chose otherwise
    (``model.calculate_per_token_loss``; the modern convention: ``transformers``' Trainer since 4.46,
    Megatron's per-token mode); pretraining keeps Megatron's default, the mean of the micro
    batches' means (equal to it when every micro batch has the same number of loss tokens).
    Per-token gradients are summed over the data-parallel ranks and divided by the tokens of the
    global batch afterwards, so the collective cannot average them itself: Megatron's DDP asserts
    ``ddp.average_in_collective`` off, which is only where the division happens."""
    m, ddp = cfg.model, cfg.ddp
    if hasattr(cfg.dataset, "dataset_root") and not cfg.is_user_set("model.calculate_per_token_loss"):
        m.calculate_per_token_loss = True
    if m.calculate_per_token_loss and ddp.average_in_collective:
        if cfg.is_user_set("ddp.average_in_collective"):
            problems.append("ddp.average_in_collective: true cannot be combined with model.calculate_per_token_loss "
                            "(gradients are divided by the global batch's token count after the reduction); "
                            "set one of them to false")
        else:
            ddp.average_in_collective = False


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


def _precision(cfg, problems: List[str]) -> None:
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


def _other_checks(cfg, world_size: int, problems: List[str]) -> None:
    from plugtron.providers.model_kind import kind_for

    problems.extend(kind_for(cfg.model).problems(cfg))  # e.g. T5: no PP, decoder length fits the targets
    from plugtron.config import megatron_build_rules

    problems.extend(megatron_build_rules.problems(cfg.model))  # what Megatron refuses only at build / first step
    if hasattr(cfg.dataset, "problems"):  # FinetuningDatasetConfig: packing needs micro_batch_size 1, ...
        problems.extend(cfg.dataset.problems(cfg.train))
    if cfg.peft is not None and not cfg.checkpoint.pretrained_checkpoint:
        problems.append("peft: requires checkpoint.pretrained_checkpoint (the model the adapters are trained on)")
    if cfg.dist.lazy_init:
        problems.append("dist.lazy_init: not supported by plugtron (models are built eagerly)")
    _check_checkpoint(cfg.checkpoint, world_size, problems)
    from plugtron.config.registered import check_registered_options

    check_registered_options(cfg, problems)


def validate(cfg, world_size: int) -> None:
    # Ranges and fixed sets first: the derivations below divide by and index with these values.
    from plugtron.config.named_builtins import switch_on_by_name

    # plugins.<built-in>.enabled first: the section's defaults then go through every check below
    problems: List[str] = switch_on_by_name(cfg)
    problems += rules.check(cfg)
    problems += [f"{p}: expected a finite float, got {getattr_path(cfg, p)}" for p in rules.non_finite_floats(cfg, "")]
    if world_size < 1:
        problems.append(f"WORLD_SIZE: expected a positive integer, got {world_size}")
    bad_values = bool(problems)
    steps = (_derive_sequence_length, _precision, _derive_vocab, _check_data, lambda c, p: _derive_parallel(c, world_size, p),
             _derive_scheduler, _derive_loss_averaging, lambda c, p: _derive_p2p(c), lambda c, p: _other_checks(c, world_size, p))
    for step in steps:
        try:
            step(cfg, problems)
        except (ArithmeticError, TypeError, ValueError):
            # Only with a value the rules already refused (a zero size divides, a NaN is cast): the
            # rule's message is the one to show. Without one, this is a bug and must surface.
            if not bad_values:
                raise
    if not problems:
        try:
            cfg.model.finalize()
        except (ValueError, AssertionError, TypeError, KeyError) as exc:
            # Megatron's own checks; a KeyError is an unknown enum name Megatron looks up.
            detail = f"unknown name {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else str(exc)
            # Megatron's message names its own attributes, not always the field: name the model fields
            # the user set, the likely cause
            given = sorted(p for p in getattr(cfg, "user_set", {}) if p.startswith("model."))
            where = f" (model fields set: {', '.join(given)})" if given else ""
            problems.append(f"model: {detail}{where}")
    if problems:
        raise ConfigError(problems, source=getattr(cfg, "source", "config"))
