"""MoE token dropping (former NeMo ``MegatronTokenDropCallback``; Megatron Bridge's ``apply_moe_token_drop``).

Toggle: ``moe_token_drop`` (the section present; its fields are the callback's arguments:
``moe_expert_capacity_factor`` default 1.0, ``moe_pad_expert_input_to_capacity`` default true).
Before the model is built it sets both on the model provider, after checking what Megatron-Core's
capacity-based dropping needs: the ``alltoall`` / ``alltoall_seq`` token dispatcher and
``aux_loss`` / ``seq_aux_loss`` / ``none`` load balancing. A negative capacity factor means no
capacity (nothing dropped); padding to capacity needs a capacity factor of at most
``num_moe_experts / moe_router_topk`` (above it the padded capacity exceeds the tokens). On a dense model (no
``model.num_moe_experts``) it warns once and changes nothing.

In Python, as the guide shows it: ``apply_moe_token_drop(provider, moe_expert_capacity_factor=1.0,
moe_pad_expert_input_to_capacity=True)``.
"""

from __future__ import annotations

import logging
from typing import List, Optional

from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")

DISPATCHERS = ("alltoall", "alltoall_seq")
LOAD_BALANCING = ("aux_loss", "seq_aux_loss", "none")


def token_drop_problems(provider, capacity_factor: Optional[float], pad: bool, where: str = "model") -> List[str]:
    """``path: message`` for each setting that rules out token dropping (empty: fine)."""
    if not getattr(provider, "num_moe_experts", None):
        return []
    problems = []
    if provider.moe_token_dispatcher_type not in DISPATCHERS:
        problems.append(f"{where}.moe_token_dispatcher_type: token dropping needs one of {', '.join(map(repr, DISPATCHERS))}, "
                        f"got {provider.moe_token_dispatcher_type!r}")
    balancing = provider.moe_router_load_balancing_type
    for kind in (balancing if isinstance(balancing, (list, tuple)) else [balancing]):
        if kind not in LOAD_BALANCING:
            problems.append(f"{where}.moe_router_load_balancing_type: token dropping needs one of "
                            f"{', '.join(map(repr, LOAD_BALANCING))}, got {kind!r}")
    if pad and (capacity_factor is None or capacity_factor < 0):
        problems.append("moe_pad_expert_input_to_capacity: padding to capacity needs a moe_expert_capacity_factor >= 0, "
                        f"got {capacity_factor!r}")
    elif pad and capacity_factor > provider.num_moe_experts / provider.moe_router_topk:
        # Each expert gets exactly capacity = tokens x topk / experts x factor slots, filled from the
        # tokens: above experts / topk that exceeds the tokens and Megatron's permute fails mid-step.
        problems.append(f"moe_expert_capacity_factor: with moe_pad_expert_input_to_capacity the factor may be at most "
                        f"model.num_moe_experts / model.moe_router_topk = {provider.num_moe_experts / provider.moe_router_topk:g} "
                        f"(an expert's padded capacity cannot exceed the tokens), got {capacity_factor:g}")
    return problems


def apply_moe_token_drop(provider, moe_expert_capacity_factor: Optional[float] = 1.0,
                         moe_pad_expert_input_to_capacity: bool = True) -> None:
    """Set capacity-based token dropping on ``provider`` (before it builds a model); ``ValueError``
    naming the fields when the provider's dispatcher or load balancing cannot drop tokens."""
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
