"""Phi-3 / Phi-4-mini providers (Hugging Face ``Phi3ForCausalLM``).

The Llama layout (RMSNorm, SwiGLU, RoPE, no biases) with the checkpoint's projections fused
(``qkv_proj`` = ``[q; k; v]`` rows, ``gate_up_proj`` = ``[gate; up]``: the weight mapping in
``hf.gemma3_phi3`` regroups them for Megatron), dropout on the residual branches (``resid_pdrop`` =
``hidden_dropout``), an optional sliding window (Phi-3-mini: 2047 tokens) and partial rotary
embeddings (``partial_rotary_factor`` = ``rotary_percent``; Phi-4-mini rotates 3/4 of each head).

LongRoPE ("su") scaling (``rope_scaling`` of the 128k-context checkpoints, Phi-4-mini's included) is
not implemented: such a config.json is refused at import, naming ``rope_scaling``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from plugtron.providers.llama import LlamaProvider


@dataclasses.dataclass
class Phi3Provider(LlamaProvider):
    seq_length: int = 4096
    rotary_base: int = 10000
    layernorm_epsilon: float = 1e-5


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
    head, 200k vocabulary, tied embeddings; without its LongRoPE scaling (see the module doc)."""

    num_layers: int = 32
    hidden_size: int = 3072
    num_attention_heads: int = 24
    num_query_groups: Optional[int] = 8
    ffn_hidden_size: Optional[int] = 8192
    vocab_size: Optional[int] = 200064
    rotary_percent: float = 0.75
    share_embeddings_and_output_weights: bool = True
