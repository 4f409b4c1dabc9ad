"""Mistral, Qwen2/2.5, Mixtral (MoE) and GPT-2 providers with their architecture defaults.

- Mistral: Llama layout with grouped-query attention; optional sliding-window attention
  (Megatron's ``window_size=(W-1, 0)`` on the local spec, see ``hf.families``).
- Qwen2/2.5: Llama layout plus biases on the fused QKV projection only (``add_qkv_bias``), RoPE
  base 1e6, RMSNorm eps 1e-6; small sizes tie embeddings.
- Mixtral: Mistral layout whose MLP is a top-2-of-8 mixture of SwiGLU experts; router top-k then
  softmax over the selected logits equals Hugging Face's softmax-then-renormalise.
- GPT-2: learned absolute positions, LayerNorm, tanh-GELU (``fast_gelu``, HF's ``gelu_new``),
  biases everywhere, tied embeddings.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal, Optional

from megatron.core.activations import fast_gelu

from plugtron.providers.gpt import GPTModelProvider
from plugtron.providers.llama import LlamaProvider


@dataclasses.dataclass
class MistralProvider(LlamaProvider):
    seq_length: int = 4096
    num_query_groups: Optional[int] = 8
    rotary_base: int = 1000000


@dataclasses.dataclass
class Mistral_7B(MistralProvider):
    """Mistral 7B v0.3 (no sliding window, 32768-token vocabulary)."""

    num_layers: int = 32
    hidden_size: int = 4096
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 14336
    vocab_size: Optional[int] = 32768


@dataclasses.dataclass
class Qwen2Provider(LlamaProvider):
    add_qkv_bias: bool = True
    rotary_base: int = 1000000
    layernorm_epsilon: float = 1e-6
    seq_length: int = 4096


@dataclasses.dataclass
class Qwen25_0_5B(Qwen2Provider):
    num_layers: int = 24
    hidden_size: int = 896
    num_attention_heads: int = 14
    num_query_groups: Optional[int] = 2
    ffn_hidden_size: Optional[int] = 4864
    vocab_size: Optional[int] = 151936
    share_embeddings_and_output_weights: bool = True


@dataclasses.dataclass
class Qwen25_7B(Qwen2Provider):
    num_layers: int = 28
    hidden_size: int = 3584
    num_attention_heads: int = 28
    num_query_groups: Optional[int] = 4
    ffn_hidden_size: Optional[int] = 18944
    vocab_size: Optional[int] = 152064


@dataclasses.dataclass
class Qwen25_72B(Qwen2Provider):
    num_layers: int = 80
    hidden_size: int = 8192
    num_attention_heads: int = 64
    num_query_groups: Optional[int] = 8
    ffn_hidden_size: Optional[int] = 29568
    vocab_size: Optional[int] = 152064


@dataclasses.dataclass
class MixtralProvider(MistralProvider):
    num_moe_experts: Optional[int] = 8
    moe_router_topk: int = 2
    moe_router_pre_softmax: bool = False
    moe_router_load_balancing_type: str = "aux_loss"
    moe_aux_loss_coeff: float = 0.02
    moe_token_dispatcher_type: str = "alltoall"
    moe_grouped_gemm: bool = False


@dataclasses.dataclass
class Mixtral_8x7B(MixtralProvider):
    num_layers: int = 32
    hidden_size: int = 4096
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 14336
    vocab_size: Optional[int] = 32000


@dataclasses.dataclass
class GPT2Provider(GPTModelProvider):
    normalization: Literal["LayerNorm", "RMSNorm"] = "LayerNorm"
    activation_func: Callable = fast_gelu
    gated_linear_unit: bool = False
    position_embedding_type: Literal["learned_absolute", "rope", "none"] = "learned_absolute"
    add_bias_linear: bool = True
    share_embeddings_and_output_weights: bool = True
    layernorm_epsilon: float = 1e-5
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    seq_length: int = 1024


@dataclasses.dataclass
class GPT2_Small(GPT2Provider):
    """GPT-2 124M."""

    num_layers: int = 12
    hidden_size: int = 768
    num_attention_heads: int = 12
    vocab_size: Optional[int] = 50257
