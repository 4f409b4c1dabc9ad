"""Qwen3 (dense) providers: the Qwen2 layout without QKV biases, plus an RMSNorm over each query
and key head before RoPE (Megatron's ``qk_layernorm``: its local and Transformer Engine specs build
``q_layernorm``/``k_layernorm`` of size ``kv_channels``, applied per head as Hugging Face's
``q_norm``/``k_norm``). The head size is 128 at every released size, which differs from
hidden/heads for 0.6B, 4B, 14B and 32B, so ``kv_channels`` is set explicitly.

Sizes are the released ``Qwen/Qwen3-*`` config.json files (vocabulary 151936, RoPE base 1e6,
RMSNorm eps 1e-6, 8 KV heads); 0.6B, 1.7B and 4B tie the embeddings.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from plugtron.providers.llama import LlamaProvider


@dataclasses.dataclass
class Qwen3Provider(LlamaProvider):
    qk_layernorm: bool = True
    add_qkv_bias: bool = False
    rotary_base: int = 1000000
    layernorm_epsilon: float = 1e-6
    seq_length: int = 4096
    max_position_embeddings: Optional[int] = 40960
    vocab_size: Optional[int] = 151936
    num_query_groups: Optional[int] = 8
    kv_channels: Optional[int] = 128


@dataclasses.dataclass
class Qwen3_0_6B(Qwen3Provider):
    num_layers: int = 28
    hidden_size: int = 1024
    num_attention_heads: int = 16
    ffn_hidden_size: Optional[int] = 3072
    share_embeddings_and_output_weights: bool = True


@dataclasses.dataclass
class Qwen3_1_7B(Qwen3Provider):
    num_layers: int = 28
    hidden_size: int = 2048
    num_attention_heads: int = 16
    ffn_hidden_size: Optional[int] = 6144
    share_embeddings_and_output_weights: bool = True


@dataclasses.dataclass
class Qwen3_4B(Qwen3Provider):
    num_layers: int = 36
    hidden_size: int = 2560
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 9728
    share_embeddings_and_output_weights: bool = True


@dataclasses.dataclass
class Qwen3_8B(Qwen3Provider):
    num_layers: int = 36
    hidden_size: int = 4096
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 12288


@dataclasses.dataclass
class Qwen3_14B(Qwen3Provider):
    num_layers: int = 40
    hidden_size: int = 5120
    num_attention_heads: int = 40
    ffn_hidden_size: Optional[int] = 17408


@dataclasses.dataclass
class Qwen3_32B(Qwen3Provider):
    num_layers: int = 64
    hidden_size: int = 5120
    num_attention_heads: int = 64
    ffn_hidden_size: Optional[int] = 25600
