"""Phi-3 / Phi-4-mini providers (Hugging Face ``Phi3ForCausalLM``).

The Llama layout (RMSNorm, SwiGLU, RoPE, no biases) with the checkpoint's projections fused
(``qkv_proj`` = ``[q; k; v]`` rows, ``gate_up_proj`` = ``[gate; up]``: the weight mapping in
``hf.gemma3_phi3`` regroups them for Megatron), dropout on the residual branches (``resid_pdrop`` =
``hidden_dropout``), an optional sliding window (Phi-3-mini: 2047 tokens) and partial rotary
embeddings (``partial_rotary_factor`` = ``rotary_percent``; Phi-4-mini rotates 3/4 of each head).

LongRoPE ("su") scaling, which the 128k-context checkpoints (Phi-4-mini's included) use, as Hugging
Face computes it: per-frequency divisors ``rope_short_factor`` while the sequence fits in
``rope_original_max_position_embeddings`` and ``rope_long_factor`` beyond (``LongRoPE``, GPTModel's
rotary embedding), and cos/sin multiplied by the attention factor (``rope_attention_factor``, default
``sqrt(1 + ln(max_position_embeddings / original) / ln(original))``). Multiplying cos and sin by a
factor is multiplying the rotated part of each query and key head by it, so the factor is applied
by ``RotaryPartScale`` in the (otherwise empty) Q/K norm slots of the attention, before RoPE.
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Tuple

import torch
from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding

from plugtron.providers.llama import LlamaProvider


class LongRoPE(RotaryEmbedding):
    """Megatron's rotary embedding with LongRoPE's per-frequency divisors, short or long by the
    sequence length (Hugging Face's rule: long when the positions go beyond the original context)."""

    def __init__(self, kv_channels: int, rotary_percent: float, rotary_base: float, short_factor, long_factor,
                 original_max: int, use_cpu_initialization: bool = True):
        super().__init__(kv_channels, rotary_percent, rotary_base=rotary_base, use_cpu_initialization=use_cpu_initialization)
        dim = int(kv_channels * rotary_percent) if rotary_percent < 1.0 else kv_channels
        shape = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
        base = float(rotary_base) ** shape
        self.short_inv_freq = 1.0 / (torch.tensor(short_factor, dtype=torch.float32) * base)
        self.long_inv_freq = 1.0 / (torch.tensor(long_factor, dtype=torch.float32) * base)
        self.original_max = original_max

    def forward(self, max_seq_len: int, offset: int = 0, packed_seq: bool = False, cp_group=None):
        # the choice depends on the arguments only, so the parent's cache of results stays right
        table = self.long_inv_freq if max_seq_len + offset > self.original_max else self.short_inv_freq
        self.inv_freq = table.to(self.inv_freq.device)
        return super().forward(max_seq_len, offset, packed_seq, cp_group)


class RotaryPartScale(torch.nn.Module):
    """Multiplies the rotated dims of each head (the first ``rot_dim``) by ``factor``; no parameters.
    Built in a Q/K norm slot (Megatron passes the norm's arguments, unused here)."""

    def __init__(self, factor: float, rot_dim: int, **_norm_args):
        super().__init__()
        self.factor, self.rot_dim = factor, rot_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[..., : self.rot_dim] * self.factor, x[..., self.rot_dim:]], -1)


@dataclasses.dataclass
class Phi3Provider(LlamaProvider):
    seq_length: int = 4096
    rotary_base: int = 10000
    layernorm_epsilon: float = 1e-5
    # LongRoPE (null: plain RoPE): per-frequency divisors for short and long sequences, each
    # rotary_dim / 2 long, the pretraining context that separates them, and the cos/sin factor
    # (null: derived from max_position_embeddings / rope_original_max_position_embeddings).
    rope_short_factor: Optional[List[float]] = None
    rope_long_factor: Optional[List[float]] = None
    rope_original_max_position_embeddings: Optional[int] = None
    rope_attention_factor: Optional[float] = None

    def _rot_dim(self) -> int:
        hd = self.kv_channels or self.hidden_size // self.num_attention_heads
        return int(hd * self.rotary_percent) if self.rotary_percent < 1.0 else hd

    def longrope_attention_factor(self) -> float:
        if self.rope_attention_factor is not None:
            return float(self.rope_attention_factor)
        original = self.rope_original_max_position_embeddings
        factor = (self.max_position_embeddings or self.seq_length) / original
        return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))

    def finalize(self) -> None:
        given = [self.rope_short_factor is not None, self.rope_long_factor is not None,
                 self.rope_original_max_position_embeddings is not None]
        if any(given) and not all(given):
            raise ValueError("model.rope_short_factor, rope_long_factor, rope_original_max_position_embeddings: "
                             "LongRoPE needs all three (or none)")
        if all(given):
            half = self._rot_dim() // 2
            for name in ("rope_short_factor", "rope_long_factor"):
                if len(getattr(self, name)) != half:
                    raise ValueError(f"model.{name}: expected {half} values (rotary dims / 2), got {len(getattr(self, name))}")
        super().finalize()

    def layer_spec(self):
        spec = super().layer_spec()
        if self.rope_short_factor is not None and self.longrope_attention_factor() != 1.0:
            from megatron.core.transformer.spec_utils import ModuleSpec

            scale = ModuleSpec(module=RotaryPartScale,
                               params={"factor": self.longrope_attention_factor(), "rot_dim": self._rot_dim()})
            attn = spec.submodules.self_attention.submodules
            attn.q_layernorm = attn.k_layernorm = scale
        return spec

    def provide(self, pre_process: bool = True, post_process: bool = True, vp_stage: Optional[int] = None):
        model = super().provide(pre_process=pre_process, post_process=post_process, vp_stage=vp_stage)
        if self.rope_short_factor is not None:
            hd = self.kv_channels or self.hidden_size // self.num_attention_heads
            model.rotary_pos_emb = LongRoPE(hd, self.rotary_percent, self.rotary_base, self.rope_short_factor,
                                            self.rope_long_factor, self.rope_original_max_position_embeddings,
                                            use_cpu_initialization=self.use_cpu_initialization)
        return model


@dataclasses.dataclass
class Phi3_Mini(Phi3Provider):
    """Phi-3-mini-4k (3.8B): 32 layers of 3072, 32 heads (no GQA), sliding window 2047, untied."""

    num_layers: int = 32
    hidden_size: int = 3072
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 8192
    vocab_size: Optional[int] = 32064
    window_size: Optional[Tuple[int, int]] = (2046, 0)


@dataclasses.dataclass
class Phi4_Mini(Phi3Provider):
    """Phi-4-mini's shape (3.8B): 32 layers of 3072, 24 heads / 8 KV groups, RoPE on 3/4 of each
    head, 200k vocabulary, tied embeddings. Its LongRoPE factors come with an import of the
    checkpoint (``convert import-hf``); this preset alone has plain RoPE at 4096 tokens."""

    num_layers: int = 32
    hidden_size: int = 3072
    num_attention_heads: int = 24
    num_query_groups: Optional[int] = 8
    ffn_hidden_size: Optional[int] = 8192
    vocab_size: Optional[int] = 200064
    rotary_percent: float = 0.75
    share_embeddings_and_output_weights: bool = True
