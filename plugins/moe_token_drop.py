"""MoE token dropping (former NeMo ``MegatronTokenDropCallback``; Megatron Bridge's ``apply_moe_token_drop``).

Toggle: ``moe_token_drop`` (the section present; its fields are the callback's arguments:
``moe_expert_capacity_factor`` default 1.0, ``moe_pad_expert_input_to_capacity`` default true).
Before the model is built it sets both on the model provider, after checking them against the rules
of the installed Megatron-Core (0.16: ``TransformerConfig.__post_init__``), one table below: with a
capacity factor, load balancing ``aux_loss`` / ``seq_aux_loss`` / ``global_aux_loss`` / ``none``
(each entry of a list); padding to capacity needs a capacity factor, and the flex dispatcher's
``deepep`` backend cannot pad. Megatron-Core 0.16 drops tokens in the router, so every dispatcher
(``allgather``, ``alltoall``, ``flex``) drops (NeMo's callback, written for older versions, asked
for ``alltoall``). A negative capacity factor means no capacity (nothing dropped). plugtron adds one
rule Megatron checks only mid-step: padding to capacity needs a capacity factor of at most
``num_moe_experts / moe_router_topk`` (above it the padded capacity exceeds the tokens). On a dense
model (no ``model.num_moe_experts``) it warns once and changes nothing.
``tests/test_moe_token_drop.py`` pins the table to the installed Megatron-Core by asking its
``TransformerConfig`` over a grid of settings.

In Python, as the guide shows it: ``apply_moe_token_drop(provider, moe_expert_capacity_factor=1.0,
moe_pad_expert_input_to_capacity=True)``.
"""

from __future__ import annotations

import logging
from typing import List, Optional

from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")

# Megatron-Core's rules for capacity-based dropping (megatron/core/transformer/transformer_config.py).
LOAD_BALANCING = ("aux_loss", "seq_aux_loss", "global_aux_loss", "none")  # allowed with a capacity factor
CANNOT_PAD = {("flex", "deepep"): "the flex dispatcher's deepep backend"}  # (dispatcher, flex backend)


def token_drop_problems(provider, capacity_factor: Optional[float], pad: bool, where: str = "model") -> List[str]:
    """``path: message`` for each setting that rules out token dropping (empty: fine)."""
    if not getattr(provider, "num_moe_experts", None):
        return []
    problems = []
    factor = None if capacity_factor is None or capacity_factor < 0 else capacity_factor  # negative: no capacity
    balancing = provider.moe_router_load_balancing_type
    for kind in (balancing if isinstance(balancing, (list, tuple)) else [balancing]) if factor is not None else []:
        if kind not in LOAD_BALANCING:
            problems.append(f"{where}.moe_router_load_balancing_type: token dropping needs one of "
                            f"{', '.join(map(repr, LOAD_BALANCING))}, got {kind!r}")
    if pad and factor is None:
        problems.append("moe_pad_expert_input_to_capacity: padding to capacity needs a moe_expert_capacity_factor >= 0, "
                        f"got {capacity_factor!r}")
        return problems
    dispatch = (provider.moe_token_dispatcher_type, getattr(provider, "moe_flex_dispatcher_backend", None))
    if pad and dispatch in CANNOT_PAD:
        problems.append(f"moe_pad_expert_input_to_capacity: {CANNOT_PAD[dispatch]} cannot pad to capacity; "
                        "set it to false or use another dispatcher")
    elif pad and factor > provider.num_moe_experts / provider.moe_router_topk:
        # Each expert gets exactly capacity = tokens x topk / experts x factor slots, filled from the
        # tokens: above experts / topk that exceeds the tokens and Megatron's permute fails mid-step.
        problems.append(f"moe_expert_capacity_factor: with moe_pad_expert_input_to_capacity the factor may be at most "
                        f"model.num_moe_experts / model.moe_router_topk = {provider.num_moe_experts / provider.moe_router_topk:g} "
                        f"(an expert's padded capacity cannot exceed the tokens), got {capacity_factor:g}")
    return problems


def apply_moe_token_drop(provider, moe_expert_capacity_factor: Optional[float] = 1.0,
                         moe_pad_expert_input_to_capacity: bool = True) -> None:
    """Set capacity-based token dropping on ``provider`` (before it builds a model); ``ValueError``
    naming the fields when the provider's load balancing or dispatcher cannot drop tokens so."""
    if not getattr(provider, "num_moe_experts", None):
        log.warning("moe_token_drop: the model is dense (model.num_moe_experts is not set); nothing to drop")
        return
    factor = None if moe_expert_capacity_factor is None or moe_expert_capacity_factor < 0 else float(moe_expert_capacity_factor)
    problems = token_drop_problems(provider, moe_expert_capacity_factor, moe_pad_expert_input_to_capacity)
    if problems:
        raise ValueError("; ".join(problems))
    provider.moe_expert_capacity_factor = factor
    provider.moe_pad_expert_input_to_capacity = bool(moe_pad_expert_input_to_capacity)


class MoETokenDrop:
    @staticmethod
    def config_problems(config) -> List[str]:
        """Checked by ``train``, ``config show`` and ``plugins list`` before anything is built."""
        s = config.moe_token_drop
        problems = token_drop_problems(config.model, s.moe_expert_capacity_factor, s.moe_pad_expert_input_to_capacity)
        return [p if p.startswith("model.") else "moe_token_drop." + p for p in problems]

    def __init__(self, config):
        self.settings = config.moe_token_drop

    @hookimpl
    def configure_model(self, config, provider):
        apply_moe_token_drop(provider, self.settings.moe_expert_capacity_factor,
                             self.settings.moe_pad_expert_input_to_capacity)
