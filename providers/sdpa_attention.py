"""Core attention for Megatron's local (pure torch) layer spec through ``F.scaled_dot_product_attention``.

Megatron-Core's local ``DotProductAttention`` is unfused: a ``baddbmm`` into a ``[b*heads, s, s]``
score buffer, a masked softmax written out in torch ops, dropout, a ``bmm``, and their backward
(strided copies of the score tensor, ``masked_fill``, zero fills). On CPU that is about a third of a
small Llama's step (``benchmarks/throughput_vs_hf.py --profile``). Torch's SDPA computes the same
softmax(QK^T * scale + mask) V with a blocked (flash) CPU kernel that never materialises the scores.

``SDPADotProductAttention`` *is* a ``DotProductAttention`` (same constructor, attributes, no extra
parameters, so checkpoints are unchanged) and takes the SDPA path only where it computes the same
function: vanilla softmax, no query-key layer scaling, no attention dropout while
training (SDPA's dropout would draw other masks than Megatron's RNG tracker). Anything else goes to
Megatron's own forward (so does causal attention over unequal query/key lengths, where Megatron's
mask is not SDPA's ``is_causal``). A sliding-window layer (Mistral, Gemma 3) takes SDPA with the
band mask Megatron's softmax builds (``window_size=(left, right)``: query i sees keys i-left..i+right)
when no explicit mask is given, as Megatron's window path ignores one. Results agree with the unfused path to float rounding (~1e-6 relative in
fp32), not bit for bit: the blocked kernel sums in another order. On CUDA without Transformer
Engine the same module picks SDPA's flash or memory-efficient kernels (O(s) memory instead of the
``[b*heads, s, s]`` buffer: 256 MiB per sample and layer at s=2048 in bf16).

Used by ``GPTModelProvider.layer_spec`` for the local spec when ``model.attention_backend`` is
``auto`` (Megatron's default) or ``flash``; ``unfused`` or ``local`` keep Megatron's module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.enums import AttnMaskType


class SDPADotProductAttention(DotProductAttention):
    """Megatron's local core attention, computed by torch SDPA where that is the same function."""

    def _sdpa_applies(self, query, key, attention_mask, attention_bias, packed_seq_params) -> bool:
        c = self.config
        return (
            self.softmax_offset is None
            and (self.scale_mask_softmax.window_size is None or (attention_mask is None and query.size(0) == key.size(0)))
            and not c.apply_query_key_layer_scaling
            and attention_bias is None
            and packed_seq_params is None
            and (not self.training or self.attention_dropout.p == 0.0)
            and (attention_mask is not None or self.attn_mask_type in (AttnMaskType.causal, AttnMaskType.no_mask))
            and (attention_mask is not None or query.size(0) == key.size(0))
        )

    def forward(self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None,
                packed_seq_params=None):
        if not self._sdpa_applies(query, key, attention_mask, attention_bias, packed_seq_params):
            return super().forward(query, key, value, attention_mask, attn_mask_type=attn_mask_type,
                                   attention_bias=attention_bias, packed_seq_params=packed_seq_params)
        sq, b, heads, dim = query.shape
        # [s, b, heads, dim] -> [b, heads, s, dim] (views; SDPA's CPU kernel takes strided inputs)
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        mask, causal = None, False
        window = self.scale_mask_softmax.window_size
        if window is not None:
            mask = _band(sq, window[0], window[1], q.device)
        elif attention_mask is not None:
            mask = ~attention_mask  # Megatron: True = masked out; SDPA: True = attend
        elif self.attn_mask_type == AttnMaskType.causal and sq > 1:
            causal = True  # Megatron's default causal mask (query i sees keys <= i; sq == sk)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, scale=self.softmax_scale,
            enable_gqa=heads != k.size(1),
        )
        # [b, heads, s, v_dim] -> [s, b, heads * v_dim] (MLA's value heads differ in size from q/k's)
        return out.permute(2, 0, 1, 3).reshape(sq, b, heads * out.size(-1))


def _band(s: int, left: int, right: int, device) -> torch.Tensor:
    """``[s, s]`` boolean, True where query i may attend key j: i - left <= j <= i + right."""
    i = torch.arange(s, device=device)
    d = i[None, :] - i[:, None]  # j - i
    return (d >= -left) & (d <= right)
