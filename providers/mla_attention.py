"""Core attention for multi-latent attention (MLA) in Megatron's local (pure torch) layer spec.

Megatron-Core 0.16's ``MLASelfAttention`` builds its core attention with ``k_channels`` (the
query/key head size: nope + rope part) and ``v_channels`` (the value head size), which only
Transformer Engine's ``TEDotProductAttention`` accepts: the local spec's ``DotProductAttention``
raises on them, so MLA has no path without CUDA + TE. These modules are the stand-in: Megatron's
local core attention (unfused, or plugtron's SDPA path) with the value head size taken from
``v_channels`` for the output (``[s, b, heads * v_channels]``) and the softmax scale MLA passes
(YaRN's mscale^2 / sqrt(qk head size)). No parameters of their own: checkpoints are unchanged.

``tests/test_deepseek_v3.py`` checks both against transformers' eager DeepSeek-V3 attention (the
logits of a whole model) and against each other.
"""

from __future__ import annotations

from typing import Optional

from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.enums import AttnBackend

from plugtron.providers.sdpa_attention import SDPADotProductAttention


class _ValueHeadSize:
    """Takes ``k_channels``/``v_channels`` as TE's module does; the output is heads x v_channels."""

    def __init__(self, config, layer_number, attn_mask_type, attention_type, attention_dropout=None,
                 softmax_scale: Optional[float] = None, k_channels: Optional[int] = None,
                 v_channels: Optional[int] = None, cp_comm_type=None, pg_collection=None):
        super().__init__(config, layer_number, attn_mask_type, attention_type, attention_dropout=attention_dropout,
                         softmax_scale=softmax_scale, cp_comm_type=cp_comm_type, pg_collection=pg_collection)
        if softmax_scale is None and k_channels is not None:
            self.softmax_scale = k_channels ** -0.5
        if v_channels is not None:
            self.hidden_size_per_partition = v_channels * self.num_attention_heads_per_partition


class MLAUnfusedAttention(_ValueHeadSize, DotProductAttention):
    """Megatron's unfused local attention for MLA (``model.attention_backend`` unfused/local)."""


class MLASDPAAttention(_ValueHeadSize, SDPADotProductAttention):
    """MLA's core attention through torch SDPA (query/key and value head sizes may differ)."""


def with_mla_core_attention(spec, attention_backend=None):
    """``spec`` (a local layer spec with ``MLASelfAttention``, changed in place and returned) with the
    core attention above."""
    attn = spec.submodules.self_attention.submodules
    unfused = attention_backend in (AttnBackend.unfused, AttnBackend.local)
    attn.core_attention = MLAUnfusedAttention if unfused else MLASDPAAttention
    return spec
