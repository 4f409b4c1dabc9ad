"""What Megatron-Core (0.16) refuses only when it builds the model or runs the first step, not in
``TransformerConfig.__post_init__`` (which ``validate()`` already runs): checked by ``validate()``,
so ``config show`` and ``train`` refuse such a config before anything is built, with one message
naming the field to change. One table; each row names the Megatron-Core code that would refuse it.
"""

from __future__ import annotations

from typing import Any, Callable, List, NamedTuple


class Rule(NamedTuple):
    path: str  # the field to change
    broken: Callable[[Any], bool]  # model section -> True when Megatron-Core would refuse it
    why: str


def _moe(m) -> bool:
    return bool(getattr(m, "num_moe_experts", None))


def _local_layers(m) -> bool:
    from plugtron.providers.gpt import uses_te_layers

    return not uses_te_layers(m)


def _sinkhorn_with_aux_loss(m) -> bool:
    kinds = m.moe_router_load_balancing_type
    kinds = kinds if isinstance(kinds, (list, tuple)) else [kinds]
    coeffs = m.moe_aux_loss_coeff if isinstance(m.moe_aux_loss_coeff, (list, tuple)) else [m.moe_aux_loss_coeff] * len(kinds)
    return any(k == "sinkhorn" and c for k, c in zip(kinds, coeffs))


RULES = (
    Rule("model.sequence_parallel",
         lambda m: _moe(m) and m.tensor_model_parallel_size > 1 and not m.sequence_parallel,
         "an MoE model with tensor_model_parallel_size > 1 needs sequence parallelism (Megatron-Core's MoELayer "
         "refuses to train without it at the first forward, transformer/moe/moe_layer.py); set "
         "model.sequence_parallel=true"),
    Rule("model.add_bias_linear",
         lambda m: (_moe(m) and m.add_bias_linear and _local_layers(m)
                    and not getattr(type(m), "OUT_OF_PLACE_EXPERT_BIAS", False)),  # gpt-oss: providers/expert_bias.py
         "MoE experts with biases fail at the first forward with Megatron-Core's local layer spec (the expert "
         "MLP adds its bias in place to a view: an autograd error, transformer/mlp.py); set model.add_bias_linear=false"),
    Rule("model.moe_aux_loss_coeff",
         _sinkhorn_with_aux_loss,
         "sinkhorn load balancing takes no auxiliary loss (Megatron-Core's router asserts a coefficient of 0 at "
         "the first forward, transformer/moe/router.py); set model.moe_aux_loss_coeff=0.0"),
)


def problems(model) -> List[str]:
    """``path: why`` for every rule ``model`` breaks."""
    return [f"{rule.path}: {rule.why}" for rule in RULES if rule.broken(model)]
