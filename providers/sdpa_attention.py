"""Megatron's local core attention computed by ``torch.nn.functional.scaled_dot_product_attention``.

Megatron-Core's local ``DotProductAttention`` materializes the ``[b * heads, s, s]`` score matrix
(``baddbmm`` + softmax + ``bmm``): at s=2048 that is 256 MiB per sample and layer in bf16, kept for
the backward, and three memory-bound kernels. Without Transformer Engine (whose fused attention
avoids this) a CUDA run therefore uses this subclass, whose forward hands the same query/key/value
to torch's SDPA, which picks the flash or memory-efficient kernel on the GPU (O(s) memory).

Same inputs, same outputs, same parameters (none) as the parent, so checkpoints do not change.
Cases SDPA does not express here (packed sequences, attention bias, a softmax offset, sliding
windows, query-key layer scaling, causal attention over unequal lengths) run the parent's forward.
On CPU plugtron keeps Megatron's own module (``GPTModelProvider.layer_spec``), so CPU losses stay
bit-identical to earlier versions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core import tensor_parallel
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.enums import AttnMaskType


class SDPADotProductAttention(DotProductAttention):
    """``DotProductAttention`` whose forward runs torch's fused scaled-dot-product attention."""

    def _sdpa_applies(self, query, key, attention_mask, mask_type, attention_bias, packed_seq_params) -> bool:
        if packed_seq_params is not None or attention_bias is not None:
            return False  # the parent raises its own clear assertion for packed sequences
        if self.softmax_offset is not None or self.scale_mask_softmax.window_size is not None:
            return False
        if self.config.apply_query_key_layer_scaling:
            return False
        if mask_type == AttnMaskType.causal and attention_mask is None and query.size(0) != key.size(0):
            return False  # Megatron's causal mask for sq != sk is not SDPA's is_causal
        return mask_type in (AttnMaskType.causal, AttnMaskType.padding, AttnMaskType.no_mask)

    def forward(self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None,
                packed_seq_params=None):
        mask_type = attn_mask_type if attn_mask_type is not None else self.attn_mask_type
        if not self._sdpa_applies(query, key, attention_mask, mask_type, attention_bias, packed_seq_params):
            return super().forward(query, key, value, attention_mask, attn_mask_type=attn_mask_type,
                                   attention_bias=attention_bias, packed_seq_params=packed_seq_params)
        # Megatron's layout [s, b, heads, head_dim] -> SDPA's [b, heads, s, head_dim] (views, no copies)
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        groups = self.num_attention_heads_per_partition // self.num_query_groups_per_partition
        if groups > 1:  # grouped-query attention: each KV head serves `groups` query heads (as the parent)
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        mask = None
        if attention_mask is not None:
            mask = ~attention_mask.to(torch.bool)  # Megatron: True = masked; SDPA (bool): True = attend
        causal = mask_type == AttnMaskType.causal and attention_mask is None
        p = self.attention_dropout.p if self.training else 0.0
        if p > 0.0 and not self.config.sequence_parallel:
            with tensor_parallel.get_cuda_rng_tracker().fork():  # same RNG stream choice as the parent
                ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal,
                                                     scale=self.softmax_scale)
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal,
                                                 scale=self.softmax_scale)
        # [b, heads, s, head_dim] -> [s, b, heads * head_dim], the parent's output layout
        ctx = ctx.permute(2, 0, 1, 3).contiguous()
        return ctx.view(ctx.size(0), ctx.size(1), self.hidden_size_per_partition)
