"""Features this machine cannot run, reported before anything is built (never a deep traceback).

Config logic for GPU-only features is validated everywhere (``config show`` works on a laptop);
this check runs only when a run is about to build the model.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from plugtron.errors import UnsupportedOnThisMachine


#: Lowest CUDA compute capability of each fp8 recipe in Transformer Engine: fp8 tensor cores from
#: Ada/Hopper (8.9), sub-channel blockwise scaling on Hopper (9.0), MXFP8 on Blackwell (10.0).
FP8_MIN_CAPABILITY = {"delayed": (8, 9), "tensorwise": (8, 9), "blockwise": (9, 0), "mxfp8": (10, 0)}


def te_importable() -> bool:
    """Transformer Engine installed (looked up without importing it)."""
    import importlib.util

    return importlib.util.find_spec("transformer_engine") is not None


def fp8_problems(cfg, te: bool, capability: Optional[Tuple[int, int]], device: str = "") -> List[str]:
    """Why ``cfg``'s fp8 settings cannot run here: Transformer Engine missing, no GPU, or a GPU older
    than the recipe needs (``capability``: ``torch.cuda.get_device_capability()``, None without CUDA)."""
    m = cfg.model
    if m.fp8 is None:
        return []
    mp = cfg.mixed_precision
    what = f"mixed_precision {mp!r}" if isinstance(mp, str) else f"model.fp8 {m.fp8!r}"
    recipe = str(getattr(m.fp8_recipe, "value", m.fp8_recipe))
    need = FP8_MIN_CAPABILITY.get(recipe, (8, 9))
    out = []
    if not te:
        out.append(f"{what}: fp8 runs in Transformer Engine's layers, and transformer_engine is not installed "
                   "(pip install 'transformer-engine[pytorch]'), or use mixed_precision bf16_mixed")
    elif m.transformer_impl != "transformer_engine":
        out.append(f"{what}: fp8 needs model.transformer_impl 'transformer_engine', got {m.transformer_impl!r}")
    if capability is None:
        out.append(f"{what}: fp8 ({recipe} recipe) needs a CUDA GPU of compute capability >= "
                   f"{need[0]}.{need[1]}; this machine has none")
    elif tuple(capability) < need:
        out.append(f"{what}: the {recipe} fp8 recipe needs compute capability >= {need[0]}.{need[1]}"
                   f"{' (Blackwell)' if recipe == 'mxfp8' else ''}; this GPU{f' ({device})' if device else ''} "
                   f"has {capability[0]}.{capability[1]}")
    return out


def check(cfg) -> None:
    """Raise ``UnsupportedOnThisMachine`` listing every GPU-only feature ``cfg`` asks for when this
    machine has no CUDA. Reads the config only (derivations are ``cfg.validate()``'s)."""
    import torch

    if torch.cuda.is_available():
        problems = fp8_problems(cfg, te_importable(), torch.cuda.get_device_capability(),
                                torch.cuda.get_device_name())
        if problems:
            raise UnsupportedOnThisMachine("this run cannot start here:\n  " + "\n  ".join(problems))
        return
    m = cfg.model
    problems: List[str] = []

    def no(path: str, why: str) -> None:
        problems.append(f"{path}: {why} needs CUDA; this machine has none")

    if m.context_parallel_size > 1:
        no("model.context_parallel_size", "context parallelism (Transformer Engine attention)")
    problems.extend(fp8_problems(cfg, te_importable(), None))
    if m.moe_grouped_gemm:
        no("model.moe_grouped_gemm", "grouped-GEMM MoE")
    if m.moe_token_dispatcher_type == "flex":
        no("model.moe_token_dispatcher_type", "the 'flex' dispatcher (DeepEP/HybridEP)")
    if cfg.comm_overlap is not None and cfg.comm_overlap.tp_comm_overlap:
        no("comm_overlap.tp_comm_overlap", "tensor-parallel communication overlap (Transformer Engine userbuffers)")
    if cfg.dist.distributed_backend == "nccl":
        no("dist.distributed_backend", "the NCCL backend")
    if problems:
        raise UnsupportedOnThisMachine("this run cannot start here:\n  " + "\n  ".join(problems))
