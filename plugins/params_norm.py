"""Parameter norm (former NeMo ``log_params_norm`` / Megatron's ``--log-params-norm``).

Toggle: ``logger.log_params_norm``. Adds ``params_norm`` - the L2 norm of all the model's weights,
as Megatron-LM's ``calc_params_l2_norm`` counts them - to every log record through
``collect_metrics`` (every logger receives it). Each weight is counted once: tensor-parallel
duplicates (layer norms, biases replicated on every TP rank) and the tied output embedding
(``shared``) are skipped; the sums of squares are all-reduced over the model-parallel group (dense
weights) and the expert group (MoE experts, which are not data-parallel replicas).

Cost: on log steps only, a pass over the weights (a norm kernel per tensor) and one or two
all-reduces of a single number - collective on every rank, which all call ``collect_metrics``.
"""

from __future__ import annotations

from plugtron.hookspecs import hookimpl


def _square_sums(model):
    """(dense, expert) sums of squares of this rank's weights, as 0-d float32 tensors."""
    import torch
    from megatron.core.tensor_parallel import param_is_not_tensor_parallel_duplicate

    dense = expert = None
    for chunk in model:
        for p in chunk.parameters():
            if getattr(p, "shared", False) or not param_is_not_tensor_parallel_duplicate(p):
                continue
            sq = torch.linalg.vector_norm(p.detach().float()) ** 2
            if getattr(p, "allreduce", True):  # Megatron marks expert weights allreduce=False
                dense = sq if dense is None else dense + sq
            else:
                expert = sq if expert is None else expert + sq
    return dense, expert


class ParamsNorm:
    def __init__(self, config):
        pass

    @hookimpl
    def collect_metrics(self, state):
        import torch
        import torch.distributed as dist
        from megatron.core import parallel_state as ps

        dense, expert = _square_sums(state.model)
        device = next(p for c in state.model for p in c.parameters()).device
        dense = dense if dense is not None else torch.zeros((), device=device)
        if dist.is_initialized() and ps.model_parallel_is_initialized():
            dist.all_reduce(dense, group=ps.get_model_parallel_group())
            if ps.get_expert_model_parallel_world_size() > 1 or expert is not None:
                expert = expert if expert is not None else torch.zeros((), device=device)
                dist.all_reduce(expert, group=ps.get_expert_tensor_model_pipeline_parallel_group())
        total = dense + (expert if expert is not None else 0.0)
        return {"params_norm": float(total.sqrt())}  # a sync point, on log steps only
