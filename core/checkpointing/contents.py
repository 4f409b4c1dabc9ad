"""What goes into a checkpoint, and putting it back: model, optimizer, scheduler, RNG, counters.

Model and optimizer go through Megatron's sharded state dicts (``dist_checkpointing``), keyed as
Megatron-LM keys them (``model``, or ``model0``, ``model1``... with virtual pipeline; ``optimizer``;
``opt_param_scheduler``), so the checkpoint reshards across TP/PP/DP layouts and other Megatron
tools read it. RNG and plugin states are per rank and live in plain files next to it
(``rng/rank_XXXXX.pt``), readable with ``torch.load(weights_only=True)``: no pickle of arbitrary
objects is ever written or read by plugtron.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from plugtron import distributed
from plugtron.errors import CheckpointError

# Megatron's DistributedOptimizer default ("fully_sharded_model_space") fails on this version with
# "ShardedTensor.flattened_range is not supported"; "fully_reshardable" works and reshards across
# DP/TP/PP. ``chained_optim_avoid_prefix`` keeps optimizer keys independent of how many param groups
# Megatron chains (so a checkpoint from one layout loads into another).
SHARDED_METADATA = {"distrib_optim_sharding_type": "fully_reshardable", "chained_optim_avoid_prefix": True}


def unwrap(chunk):
    """DDP -> Float16Module -> the Megatron model (whose sharded_state_dict has no ``module.``)."""
    while hasattr(chunk, "module"):
        chunk = chunk.module
    return chunk


def parallel_layout(cfg) -> Dict[str, int]:
    """The run's parallel layout as the train state records it (a resume compares the two)."""
    m = cfg.model
    return {"world_size": distributed.world_size(), "tp": m.tensor_model_parallel_size, "pp": m.pipeline_model_parallel_size,
            "dp": cfg.data_parallel_size, "vpp": m.virtual_pipeline_model_parallel_size or 1,
            "ep": m.expert_model_parallel_size}


def model_keys(n_chunks: int) -> List[str]:
    return ["model"] if n_chunks == 1 else [f"model{i}" for i in range(n_chunks)]


def adapter_only(cfg) -> bool:
    """A ``peft`` run's checkpoints hold the trainable parameters (the adapters) and their optimizer
    state only: the frozen base comes from ``checkpoint.pretrained_checkpoint``."""
    return getattr(cfg, "peft", None) is not None


def trainable_names(chunk) -> set:
    return {n for n, p in unwrap(chunk).named_parameters() if p.requires_grad}


def model_sharded_state_dict(model, trainable_only: bool = False) -> Dict[str, Any]:
    out = {}
    for key, chunk in zip(model_keys(len(model)), model):
        sd = unwrap(chunk).sharded_state_dict(metadata=dict(SHARDED_METADATA))
        if trainable_only:  # keys of a module's sharded state dict are its parameter names
            keep = trainable_names(chunk)
            sd = {k: v for k, v in sd.items() if k in keep}
        out[key] = sd
    return out


def sharded_state_dict(state, *, with_optimizer: bool, is_loading: bool) -> Dict[str, Any]:
    """The dict handed to ``dist_checkpointing.save``/``load``. Building it for loading primes the
    optimizer's state tensors (Megatron fills them in place). Adapter-only for ``peft`` runs."""
    sd = model_sharded_state_dict(state.model, trainable_only=adapter_only(state.config))
    if with_optimizer and is_loading:
        _prime_optimizer(state.optimizer)
    if with_optimizer:
        sd["optimizer"] = state.optimizer.sharded_state_dict(sd, is_loading=is_loading, metadata=dict(SHARDED_METADATA))
        sd["opt_param_scheduler"] = state.scheduler.state_dict()
    return sd


def _inner_optimizers(optimizer) -> List[Any]:
    return list(getattr(optimizer, "chained_optimizers", [optimizer]))


def _prime_optimizer(optimizer) -> None:
    """Give a fresh optimizer state tensors to load into: Megatron's DistributedOptimizer builds its
    loading state dict from the existing state and asserts a single Adam ``step`` in it, which a
    never-stepped optimizer lacks."""
    for opt in _inner_optimizers(optimizer):
        inner = getattr(opt, "optimizer", None)
        if inner is None or getattr(opt, "init_state_fn", None) is None:
            continue
        opt.init_state_fn(inner, opt.config)
        for group in inner.param_groups:
            for p in group["params"]:
                st = inner.state[p]
                if st and "step" not in st:
                    st["step"] = torch.zeros((), dtype=torch.float32)


def restore_model(model, loaded: Dict[str, Any], trainable_only: bool = False) -> None:
    """Loaded tensors into the chunks; every parameter must be covered (``trainable_only``: every
    trainable one - an adapter checkpoint - while the frozen base stays as loaded before)."""
    for key, chunk in zip(model_keys(len(model)), model):
        if key not in loaded:
            raise CheckpointError(f"checkpoint has no {key!r} entry (virtual pipeline chunks differ?)")
        if not trainable_only:
            unwrap(chunk).load_state_dict(loaded[key], strict=True)
            continue
        missing, unexpected = unwrap(chunk).load_state_dict(loaded[key], strict=False)
        lacking = sorted(set(missing) & trainable_names(chunk))
        if lacking or unexpected:
            raise CheckpointError(f"adapter checkpoint does not fit the adapters of this run "
                                  f"(missing {lacking[:5]}, unexpected {sorted(unexpected)[:5]})")


def _unshare_steps(optimizer) -> None:
    """After a load, Adam's ``step`` tensor is one object shared by every parameter's state; torch
    increments it in place per parameter, so a shared one advances N times a step (measured drift
    ~8e-4 after resume). Give each state its own copy."""
    for opt in (getattr(o, "optimizer", None) for o in _inner_optimizers(optimizer)):
        for st in getattr(opt, "state", {}).values():
            if torch.is_tensor(st.get("step")):
                st["step"] = st["step"].clone()


@contextlib.contextmanager
def _tolerate_missing_step(optimizer):
    """Megatron 0.16's DistributedOptimizer with torch's Adam (no Apex/TE, e.g. every CPU run) puts
    ``step`` into each parameter's state, then copies *every* state key from the checkpoint's
    fully_reshardable tensors, which skip ``step``: a KeyError. For the duration of the load,
    supply the state's own ``step`` (already restored from the param groups) as the source."""
    patched = []
    for opt in _inner_optimizers(optimizer):
        setter = getattr(opt, "_set_main_param_and_optimizer_states", None)
        if setter is None or not hasattr(opt, "model_param_group_index_map"):
            continue

        def with_step(model_param, tensors, _opt=opt, _setter=setter):
            group_index, group_order = _opt.model_param_group_index_map[model_param]
            main_param = _opt.optimizer.param_groups[group_index]["params"][group_order]
            step = _opt.optimizer.state[main_param].get("step")
            if step is not None and "step" not in tensors:
                tensors = {**tensors, "step": step}
            return _setter(model_param, tensors)

        opt._set_main_param_and_optimizer_states = with_step  # instance attribute: this optimizer only
        patched.append(opt)
    try:
        yield
    finally:
        for opt in patched:
            del opt._set_main_param_and_optimizer_states


def restore_optimizer(state, loaded: Dict[str, Any], *, main_params_only: bool = False) -> None:
    """Load optimizer (and scheduler) state. ``main_params_only``: keep the checkpoint's fp32 main
    params (``load_main_params_from_ckpt`` without ``load_optim``) but start moments and the
    schedule fresh."""
    with _tolerate_missing_step(state.optimizer):
        state.optimizer.load_state_dict(loaded["optimizer"])
    _unshare_steps(state.optimizer)
    from plugtron.training.fused_adam import use_fused_adam

    use_fused_adam(state.optimizer)  # the load restored the saved param-group options
    if main_params_only:
        for opt in _inner_optimizers(state.optimizer):
            getattr(opt, "optimizer", opt).state.clear()
        return
    try:
        state.scheduler.load_state_dict(loaded["opt_param_scheduler"])
    except AssertionError as exc:  # Megatron asserts when the config's schedule differs from the saved one
        raise CheckpointError(
            f"checkpoint: the learning-rate schedule differs from the saved one ({exc}); set "
            "scheduler.override_opt_param_scheduler=true to use the config's schedule, or "
            "scheduler.use_checkpoint_opt_param_scheduler=true to use the checkpoint's"
        ) from None


# ---- RNG ------------------------------------------------------------------------------------------
def capture_rng() -> Dict[str, Any]:
    """Python, numpy, torch (CPU and CUDA) and Megatron's tracker states, as weights-only types."""
    from megatron.core import tensor_parallel

    py = random.getstate()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
        "tracker": {k: v.cpu() for k, v in tensor_parallel.get_cuda_rng_tracker().get_states().items()},
    }


def restore_rng(rng: Dict[str, Any]) -> None:
    from megatron.core import tensor_parallel

    py = rng["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = rng["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    tensor_parallel.get_cuda_rng_tracker().set_states(rng["tracker"])


# ---- small per-rank files -------------------------------------------------------------------------
def rank_file(ckpt_dir: str, kind: str, rank: int) -> str:
    return os.path.join(ckpt_dir, kind, f"rank_{rank:05d}.pt")


def save_rank_file(ckpt_dir: str, kind: str, rank: int, obj: Any) -> None:
    path = rank_file(ckpt_dir, kind, rank)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(obj, path)


def load_weights_only(path: str) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing from the checkpoint") from None
    except Exception as exc:  # truncated zip, bad magic, disallowed global: all mean "not ours / corrupt"
        raise CheckpointError(f"{path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None


def load_rank_file(ckpt_dir: str, kind: str, rank: int) -> Optional[Any]:
    path = rank_file(ckpt_dir, kind, rank)
    return load_weights_only(path) if os.path.isfile(path) else None
