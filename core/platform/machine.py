"""Features this machine cannot run, reported before anything is built (never a deep traceback).

Config logic for GPU-only features is validated everywhere (``config show`` works on a laptop);
this check runs only when a run is about to build the model.
"""

from __future__ import annotations

from typing import List

from plugtron.errors import UnsupportedOnThisMachine


def check(cfg) -> None:
    import torch

    if torch.cuda.is_available():
        return
    m0 = cfg.model
    if m0.virtual_pipeline_model_parallel_size and m0.batch_p2p_comm:
        # Measured trap: on gloo, virtual pipeline with batched p2p runs but does not learn (with two
        # stages prev and next are the same rank and the batched sends/receives pair up wrongly).
        import logging

        logging.getLogger("plugtron").warning(
            "virtual pipeline on gloo: setting model.batch_p2p_comm=false (batched p2p does not learn on gloo)"
        )
        m0.batch_p2p_comm = False
    m = cfg.model
    problems: List[str] = []

    def no(path: str, why: str) -> None:
        problems.append(f"{path}: {why} needs CUDA; this machine has none")

    if m.context_parallel_size > 1:
        no("model.context_parallel_size", "context parallelism (Transformer Engine attention)")
    if m.fp8 is not None:
        no("model.fp8", "fp8 (Transformer Engine)")
    if m.moe_grouped_gemm:
        no("model.moe_grouped_gemm", "grouped-GEMM MoE")
    if m.moe_token_dispatcher_type == "flex":
        no("model.moe_token_dispatcher_type", "the 'flex' dispatcher (DeepEP/HybridEP)")
    if cfg.comm_overlap is not None and cfg.comm_overlap.tp_comm_overlap:
        no("comm_overlap.tp_comm_overlap", "tensor-parallel communication overlap (Transformer Engine userbuffers)")
    if cfg.profiling.use_nsys_profiler:
        no("profiling.use_nsys_profiler", "Nsight Systems profiling")
    if cfg.dist.distributed_backend == "nccl":
        no("dist.distributed_backend", "the NCCL backend")
    if problems:
        raise UnsupportedOnThisMachine("this run cannot start here:\n  " + "\n  ".join(problems))
