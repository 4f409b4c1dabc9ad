"""gpt-oss providers (Hugging Face ``GptOssForCausalLM``): provider and the 20B / 120B sizes.

Every piece of gpt-oss is a Megatron-Core 0.16 config field; plugtron adds no layer of its own:

- attention sinks (a learnable logit per head that joins each query's softmax and is dropped after
  it, HF's ``sinks``) -> ``softmax_type='learnable'`` (the ``softmax_offset`` parameter of the core
  attention). plugtron's SDPA attention hands such layers to Megatron's own softmax path (torch
  ops, CPU and GPU; Transformer Engine's fused attention takes it too);
- sliding-window layers alternating with full ones (HF ``layer_types``) -> ``window_size=(W-1, 0)``
  (a query sees W keys, itself included, as in HF) and ``window_attn_skip_freq`` (2: every second
  layer is full; or a 0/1 list per layer, 1 = sliding);
- biases on q/k/v/o, the router and every expert -> ``add_bias_linear`` (Megatron scales an expert's
  output bias by its routing weight, as HF does);
- the clamped SwiGLU ``(clamp(up, -7, 7) + 1) * g * sigmoid(1.702 g)``, ``g = min(gate, 7)`` ->
  ``activation_func=quick_gelu`` (``x * sigmoid(1.702 x)``), ``glu_linear_offset=1`` and
  ``activation_func_clamp_value=7``; HF interleaves gate and up columns in ``gate_up_proj``, the
  weight mapping (``hf.gpt_oss``) de-interleaves them into Megatron's ``[gate; up]``;
- expert output biases: Megatron-Core's local expert MLP adds them in place to an autograd view (the
  first backward fails); ``provide`` makes each expert a ``BiasedExpertMLP`` (providers/expert_bias.py),
  the same function out of place;
- the router: top-k of the logits, then a softmax over the kept ones -> ``moe_router_pre_softmax=False``;
- YaRN RoPE -> ``position_embedding_type='yarn'`` with the ``yarn_*`` fields below, which Megatron's
  ``GPTModel`` and attention read from the config (the attention factor ``0.1 ln(factor) + 1``
  multiplies cos and sin, as HF's ``attention_scaling``). ``yarn_correction_range_round_to_int`` is
  HF's ``truncate`` (false for the released models).

Sizes are the released ``openai/gpt-oss-20b`` / ``gpt-oss-120b`` config.json files (hidden 2880,
64 query heads of 64, 8 KV heads, 4 experts per token, window 128, RoPE base 150000, YaRN x32 over
4096 positions, vocabulary 201088). Those checkpoints store the experts in MXFP4; import needs them
dequantized (the import error says how).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Literal, Optional, Tuple, Union

from megatron.core.activations import quick_gelu

from plugtron.providers.gpt import GPTModelProvider


@dataclasses.dataclass
class GptOssProvider(GPTModelProvider):
    normalization: Literal["LayerNorm", "RMSNorm"] = "RMSNorm"
    layernorm_epsilon: float = 1e-5
    activation_func: Callable = quick_gelu
    gated_linear_unit: bool = True
    glu_linear_offset: float = 1.0
    activation_func_clamp_value: Optional[float] = 7.0
    bias_activation_fusion: bool = False
    add_bias_linear: bool = True
    add_qkv_bias: bool = True
    softmax_type: Literal["vanilla", "off-by-one", "learnable"] = "learnable"
    share_embeddings_and_output_weights: bool = False
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    num_attention_heads: int = 64
    num_query_groups: Optional[int] = 8
    kv_channels: Optional[int] = 64
    hidden_size: int = 2880
    ffn_hidden_size: Optional[int] = 2880
    window_size: Optional[Tuple[int, int]] = (127, 0)
    window_attn_skip_freq: Optional[Union[int, List[int]]] = 2
    seq_length: int = 4096
    max_position_embeddings: Optional[int] = 131072
    vocab_size: Optional[int] = 201088
    # RoPE with YaRN scaling (HF's rope_scaling {"rope_type": "yarn", ...})
    position_embedding_type: Literal["learned_absolute", "rope", "yarn", "none"] = "yarn"
    rotary_base: int = 150000
    yarn_rotary_scaling_factor: float = 32.0
    yarn_original_max_position_embeddings: int = 4096
    yarn_beta_fast: float = 32.0
    yarn_beta_slow: float = 1.0
    # null/null: attention factor 0.1 ln(factor) + 1 (HF's default when rope_scaling has no mscale)
    yarn_mscale: Optional[float] = None
    yarn_mscale_all_dim: Optional[float] = None
    yarn_correction_range_round_to_int: bool = False
    # MoE: every layer; top-4 of the logits, softmax over the kept four; no shared expert
    num_moe_experts: Optional[int] = 32
    moe_ffn_hidden_size: Optional[int] = 2880
    moe_router_topk: int = 4
    moe_router_pre_softmax: bool = False
    moe_router_load_balancing_type: str = "aux_loss"
    moe_aux_loss_coeff: float = 0.0
    moe_token_dispatcher_type: str = "alltoall"
    moe_grouped_gemm: bool = False

    # Megatron-Core: "Bias in Moe is only supported when ETP==1" (Bridge sets it in every recipe too)
    expert_tensor_parallel_size: Optional[int] = 1

    # Read by the build rules (core/config/megatron_build_rules.py): expert biases work here.
    OUT_OF_PLACE_EXPERT_BIAS = True
    # Read by AutoBridge.import_ckpt: conversion's TP world has expert TP = TP (see the ETP note above).
    IMPORTS_AT_TP1_ONLY = True

    def provide(self, pre_process: bool = True, post_process: bool = True, vp_stage: Optional[int] = None):
        from plugtron.providers.expert_bias import use_biased_expert_mlp

        model = super().provide(pre_process=pre_process, post_process=post_process, vp_stage=vp_stage)
        use_biased_expert_mlp(model)
        return model


@dataclasses.dataclass
class GptOss_20B(GptOssProvider):
    num_layers: int = 24
    num_moe_experts: Optional[int] = 32


@dataclasses.dataclass
class GptOss_120B(GptOssProvider):
    num_layers: int = 36
    num_moe_experts: Optional[int] = 128
