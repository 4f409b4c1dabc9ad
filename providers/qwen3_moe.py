"""Qwen3-MoE providers: the Qwen3 attention (per-head QK RMSNorm, head size 128, no biases) with every
MLP a mixture of SwiGLU experts and no shared expert. The router is a softmax over the experts and
the top-k are kept: Hugging Face's ``norm_topk_prob=true`` (the released models) renormalises the
kept probabilities, which is Megatron's top-k-then-softmax (``moe_router_pre_softmax=False``);
``norm_topk_prob=false`` keeps them as they are (``moe_router_pre_softmax=True``).

Sizes are the released ``Qwen/Qwen3-30B-A3B`` and ``Qwen/Qwen3-235B-A22B`` config.json files
(128 experts, 8 per token, 4 KV heads, vocabulary 151936, RoPE base 1e6, RMSNorm eps 1e-6).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from plugtron.providers.qwen3 import Qwen3Provider


@dataclasses.dataclass
class Qwen3MoEProvider(Qwen3Provider):
    num_moe_experts: Optional[int] = 128
    moe_router_topk: int = 8
    moe_router_pre_softmax: bool = False  # top-k, then softmax over the kept: norm_topk_prob=true
    moe_router_load_balancing_type: str = "aux_loss"
    moe_aux_loss_coeff: float = 1e-3
    moe_token_dispatcher_type: str = "alltoall"
    moe_grouped_gemm: bool = False
    num_query_groups: Optional[int] = 4


@dataclasses.dataclass
class Qwen3_30B_A3B(Qwen3MoEProvider):
    num_layers: int = 48
    hidden_size: int = 2048
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 6144  # the dense size in config.json; every layer is MoE
    moe_ffn_hidden_size: Optional[int] = 768


@dataclasses.dataclass
class Qwen3_235B_A22B(Qwen3MoEProvider):
    num_layers: int = 94
    hidden_size: int = 4096
    num_attention_heads: int = 64
    ffn_hidden_size: Optional[int] = 12288
    moe_ffn_hidden_size: Optional[int] = 1536
