"""Llama-family providers: ``GPTModelProvider`` with Llama's architecture defaults, and named sizes.

RoPE, RMSNorm, SwiGLU (gated ``silu`` MLP), no linear biases, untied embeddings. Llama 2 uses
multi-head attention at 7B and RoPE base 10000; Llama 3 adds grouped-query attention (8 KV groups)
and base 500000; Llama 3.1 adds Llama-3-style RoPE frequency scaling (Megatron's ``rope_scaling``:
factor, with low/high frequency factors 1/4 and an 8192-token original context fixed by Megatron).
Sizes are the published architectures; ``seq_length`` is the training length, which users usually
lower.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal, Optional

import torch.nn.functional as F

from plugtron.providers.gpt import GPTModelProvider


@dataclasses.dataclass
class LlamaProvider(GPTModelProvider):
    normalization: Literal["LayerNorm", "RMSNorm"] = "RMSNorm"
    activation_func: Callable = F.silu
    gated_linear_unit: bool = True
    position_embedding_type: Literal["learned_absolute", "rope", "none"] = "rope"
    add_bias_linear: bool = False
    share_embeddings_and_output_weights: bool = False
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    rotary_base: int = 10000
    layernorm_epsilon: float = 1e-5


@dataclasses.dataclass
class Llama2Provider(LlamaProvider):
    seq_length: int = 4096
    vocab_size: Optional[int] = 32000


@dataclasses.dataclass
class Llama3Provider(LlamaProvider):
    seq_length: int = 8192
    vocab_size: Optional[int] = 128256
    rotary_base: int = 500000
    num_query_groups: Optional[int] = 8


@dataclasses.dataclass
class Llama31Provider(Llama3Provider):
    rope_scaling: bool = True
    rope_scaling_factor: float = 8.0


@dataclasses.dataclass
class Llama2_7B(Llama2Provider):
    num_layers: int = 32
    hidden_size: int = 4096
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 11008


@dataclasses.dataclass
class Llama3_8B(Llama3Provider):
    num_layers: int = 32
    hidden_size: int = 4096
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 14336


@dataclasses.dataclass
class Llama3_70B(Llama3Provider):
    num_layers: int = 80
    hidden_size: int = 8192
    num_attention_heads: int = 64
    ffn_hidden_size: Optional[int] = 28672


@dataclasses.dataclass
class Llama31_8B(Llama31Provider):
    num_layers: int = 32
    hidden_size: int = 4096
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 14336


@dataclasses.dataclass
class Llama31_70B(Llama31Provider):
    num_layers: int = 80
    hidden_size: int = 8192
    num_attention_heads: int = 64
    ffn_hidden_size: Optional[int] = 28672


@dataclasses.dataclass
class Llama31_405B(Llama31Provider):
    num_layers: int = 126
    hidden_size: int = 16384
    num_attention_heads: int = 128
    ffn_hidden_size: Optional[int] = 53248


@dataclasses.dataclass
class Llama32_1B(Llama31Provider):
    """Llama 3.2 1B: tied embeddings and RoPE scaling factor 32."""

    num_layers: int = 16
    hidden_size: int = 2048
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 8192
    rope_scaling_factor: float = 32.0
    share_embeddings_and_output_weights: bool = True


@dataclasses.dataclass
class Llama32_3B(Llama31Provider):
    """Llama 3.2 3B: tied embeddings and RoPE scaling factor 32."""

    num_layers: int = 28
    hidden_size: int = 3072
    num_attention_heads: int = 24
    ffn_hidden_size: Optional[int] = 8192
    rope_scaling_factor: float = 32.0
    share_embeddings_and_output_weights: bool = True
