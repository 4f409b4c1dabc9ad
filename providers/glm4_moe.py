"""GLM-4.5 MoE providers (Hugging Face ``Glm4MoeForCausalLM``).

The Llama layout (RMSNorm, SwiGLU, untied embeddings) with these differences, each a Megatron-Core
option:

- attention: grouped-query, head size 128, biases on q/k/v only (``add_qkv_bias``), RoPE on the first
  half of each head (``rotary_percent`` 0.5: Megatron and Hugging Face both rotate dims
  ``[0, rotary_dim)`` with rotate-half inside them and pass the rest through), per-head QK RMSNorm on
  GLM-4.5 but not on 4.5-Air (``qk_layernorm``);
- the first ``first_k_dense_replace`` layers have a dense MLP, the rest are MoE (``moe_layer_freq`` as a
  0/1 list; ``decoder_spec`` builds each layer from it);
- MoE: sigmoid router scores; the top-k is chosen on score + a per-expert correction bias
  (``moe_router_enable_expert_bias``: the router's ``expert_bias`` buffer is HF's
  ``e_score_correction_bias``), the kept scores are renormalised and scaled by
  ``routed_scaling_factor`` (``moe_router_topk_scaling_factor``); one always-on shared expert
  (``moe_shared_expert_intermediate_size``) is added to the routed experts' output.

Training defaults are Megatron Bridge's GLM provider (``src/megatron/bridge/models/glm/glm45_provider.py``):
sequence-level auxiliary loss 1e-3, expert-bias update rate 0, alltoall dispatcher. Bridge's GPU-only
choices (grouped GEMM, permute fusion, shared-expert overlap on a side CUDA stream) are left off so the
providers also run on CPU; its multi-token-prediction layer is not built (``mtp_num_layers`` unset:
Hugging Face's model has none either).

Sizes are the released ``zai-org/GLM-4.5`` and ``zai-org/GLM-4.5-Air`` config.json files.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Union

from plugtron.providers.gpt import uses_te_layers, with_sdpa_attention
from plugtron.providers.llama import LlamaProvider


def dense_then_moe(first_dense: int, layers: int) -> List[int]:
    """Megatron's ``moe_layer_freq`` list: 0 for each of the first ``first_dense`` layers, then 1."""
    return [0] * first_dense + [1] * (layers - first_dense)


@dataclasses.dataclass
class GLM45Provider(LlamaProvider):
    add_qkv_bias: bool = True
    qk_layernorm: bool = False
    rotary_percent: float = 0.5
    rotary_base: int = 1000000
    layernorm_epsilon: float = 1e-5
    seq_length: int = 4096
    max_position_embeddings: Optional[int] = 131072
    vocab_size: Optional[int] = 151552
    num_attention_heads: int = 96
    num_query_groups: Optional[int] = 8
    kv_channels: Optional[int] = 128
    num_moe_experts: Optional[int] = 128
    moe_router_topk: int = 8
    moe_router_score_function: str = "sigmoid"
    moe_router_enable_expert_bias: bool = True
    moe_router_bias_update_rate: float = 0.0
    moe_router_topk_scaling_factor: Optional[float] = 1.0
    moe_router_dtype: Optional[str] = "fp32"
    moe_router_pre_softmax: bool = False
    moe_router_load_balancing_type: str = "seq_aux_loss"
    moe_aux_loss_coeff: float = 1e-3
    moe_token_dispatcher_type: str = "alltoall"
    moe_grouped_gemm: bool = False

    def decoder_spec(self, vp_stage: Optional[int] = None):
        """This pipeline stage's layers, dense or MoE as ``moe_layer_freq`` says (Megatron's block spec)."""
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_decoder_block_spec

        te = uses_te_layers(self)
        block = get_gpt_decoder_block_spec(self, use_transformer_engine=te, normalization=self.normalization,
                                           vp_stage=vp_stage)
        if not te:
            block.layer_specs = [with_sdpa_attention(s, self.attention_backend) for s in block.layer_specs]
        return block


@dataclasses.dataclass
class GLM45_355B_A32B(GLM45Provider):
    num_layers: int = 92
    hidden_size: int = 5120
    ffn_hidden_size: Optional[int] = 12288
    num_moe_experts: Optional[int] = 160
    moe_ffn_hidden_size: Optional[int] = 1536
    moe_shared_expert_intermediate_size: Optional[int] = 1536
    moe_layer_freq: Union[int, List[int]] = dataclasses.field(default_factory=lambda: dense_then_moe(3, 92))
    qk_layernorm: bool = True
    moe_router_topk_scaling_factor: Optional[float] = 2.5


@dataclasses.dataclass
class GLM45_Air_106B_A12B(GLM45Provider):
    num_layers: int = 46
    hidden_size: int = 4096
    ffn_hidden_size: Optional[int] = 10944
    num_moe_experts: Optional[int] = 128
    moe_ffn_hidden_size: Optional[int] = 1408
    moe_shared_expert_intermediate_size: Optional[int] = 1408
    moe_layer_freq: Union[int, List[int]] = dataclasses.field(default_factory=lambda: dense_then_moe(1, 46))
