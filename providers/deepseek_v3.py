"""DeepSeek-V3 providers: multi-latent attention (MLA) with low-rank query and key/value projections
and a decoupled RoPE part per head (YaRN-scaled), the first ``k`` layers dense and the rest a mixture
of SwiGLU experts with shared experts, routed by sigmoid scores with a per-expert bias that steers
the choice only (aux-loss-free balancing), group-limited top-k and a routed scaling factor.

Built from Megatron-Core's own pieces: ``MLATransformerConfig`` / ``MLASelfAttention`` (the local
spec's ``multi_latent_attention``), the router's ``moe_router_score_function='sigmoid'``,
``moe_router_enable_expert_bias``, ``moe_router_num_groups`` / ``moe_router_group_topk`` and
``moe_router_topk_scaling_factor``, and ``moe_layer_freq`` as a 0/1 list for the dense layers.
Megatron's MLA RoPE takes the even then the odd dimensions of the rotary part (``rope_utils``'s
``multi_latent_attention`` branch), which is Hugging Face's ``rope_interleave=true``.

Multi-token prediction (``mtp_num_layers``) is not wired: the main model only, as transformers'
``DeepseekV3ForCausalLM`` computes it; the import refuses a checkpoint that holds MTP weights.

Sizes are the released ``deepseek-ai/DeepSeek-V3`` config.json (61 layers, 3 dense, 256 routed experts
+ 1 shared, 8 per token from 4 of 8 groups, scaling 2.5, q/kv ranks 1536/512, YaRN x40 over 4096).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Literal, Optional, Union

import torch.nn.functional as F
from megatron.core.transformer.transformer_config import MLATransformerConfig

from plugtron.providers.gpt import GPTModelProvider, check_encoder_parallelism, uses_te_layers, with_sdpa_attention
from plugtron.providers.mla_attention import with_mla_core_attention


@dataclasses.dataclass
class DeepSeekV3Provider(GPTModelProvider, MLATransformerConfig):
    # Megatron's MLA fields (q_lora_rank, kv_lora_rank, qk_head_dim, qk_pos_emb_head_dim, v_head_dim,
    # rope_type, rotary_scaling_factor, original_max_position_embeddings, beta_fast/slow, mscale,
    # mscale_all_dim) come from MLATransformerConfig; null q_lora_rank projects queries directly (V2-Lite).
    multi_latent_attention: bool = True
    q_lora_rank: Optional[int] = 1536
    kv_lora_rank: int = 512
    qk_head_dim: int = 128
    qk_pos_emb_head_dim: int = 64
    v_head_dim: int = 128
    rope_type: str = "yarn"
    rotary_base: int = 10000
    rotary_scaling_factor: float = 40.0
    original_max_position_embeddings: int = 4096
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    mscale: float = 1.0
    mscale_all_dim: float = 1.0

    num_layers: int = 61
    hidden_size: int = 7168
    ffn_hidden_size: Optional[int] = 18432
    num_attention_heads: int = 128
    kv_channels: Optional[int] = 128
    normalization: Literal["LayerNorm", "RMSNorm"] = "RMSNorm"
    layernorm_epsilon: float = 1e-6
    qk_layernorm: bool = True  # the RMSNorms on the compressed q and kv (HF's q_a_/kv_a_layernorm)
    activation_func: Callable = F.silu
    gated_linear_unit: bool = True
    add_bias_linear: bool = False
    position_embedding_type: Literal["learned_absolute", "rope", "none"] = "rope"
    share_embeddings_and_output_weights: bool = False
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    seq_length: int = 4096
    max_position_embeddings: Optional[int] = 163840
    vocab_size: Optional[int] = 129280

    num_moe_experts: Optional[int] = 256
    moe_ffn_hidden_size: Optional[int] = 2048
    moe_shared_expert_intermediate_size: Optional[int] = 2048  # 1 shared expert x moe_ffn_hidden_size
    moe_layer_freq: Union[int, List[int]] = dataclasses.field(default_factory=lambda: [0] * 3 + [1] * 58)
    moe_router_topk: int = 8
    moe_router_num_groups: Optional[int] = 8
    moe_router_group_topk: Optional[int] = 4
    moe_router_topk_scaling_factor: Optional[float] = 2.5
    moe_router_score_function: Literal["softmax", "sigmoid"] = "sigmoid"
    moe_router_enable_expert_bias: bool = True
    moe_router_bias_update_rate: float = 1e-3
    moe_router_pre_softmax: bool = True
    moe_router_dtype: Optional[str] = "fp32"
    moe_router_load_balancing_type: str = "seq_aux_loss"
    moe_aux_loss_coeff: float = 1e-4
    moe_token_dispatcher_type: str = "alltoall"
    moe_grouped_gemm: bool = False

    def finalize(self) -> None:
        if self.multi_latent_attention and self.position_embedding_type != "rope":
            raise ValueError("model.position_embedding_type: multi-latent attention applies its own RoPE; "
                             f"expected 'rope', got {self.position_embedding_type!r}")
        if self.mtp_num_layers:
            raise ValueError("model.mtp_num_layers: multi-token prediction is not supported for DeepSeek-V3 in "
                             "plugtron (the main model only, as transformers' DeepseekV3ForCausalLM); set it to null")
        if self.apply_rope_fusion and not uses_te_layers(self):
            raise ValueError("model.apply_rope_fusion: the fused MLA YaRN RoPE kernel needs CUDA and Transformer "
                             "Engine; set it to false (the unfused RoPE computes the same function)")
        MLATransformerConfig.__post_init__(self)
        check_encoder_parallelism(self)

    def layer_spec(self):
        """One layer's spec (MoE unless ``moe_layer_freq`` makes every layer dense)."""
        return self._layer_specs()[-1]

    def _layer_specs(self):
        from megatron.core.models.gpt import gpt_layer_specs as specs

        use_te = uses_te_layers(self)
        layers = specs.get_gpt_decoder_layer_specs(self, use_te, normalization=self.normalization)
        if use_te:
            return layers
        return [self._local(s) for s in layers]

    def _local(self, spec):
        if self.multi_latent_attention:
            return with_mla_core_attention(spec, self.attention_backend)
        return with_sdpa_attention(spec, self.attention_backend)

    def decoder_spec(self, vp_stage: Optional[int] = None):
        """This stage's layers: dense for the first ``k`` (``moe_layer_freq`` 0), MoE after."""
        from megatron.core.models.gpt import gpt_layer_specs as specs

        use_te = uses_te_layers(self)
        block = specs.get_gpt_decoder_block_spec(self, use_te, normalization=self.normalization, vp_stage=vp_stage)
        if not use_te:
            block.layer_specs = [self._local(s) for s in block.layer_specs]
        return block


@dataclasses.dataclass
class DeepSeekV3(DeepSeekV3Provider):
    """DeepSeek-V3 / V3-0324 / R1 (671B total, 37B active): the defaults above."""


@dataclasses.dataclass
class DeepSeekV3Tiny(DeepSeekV3Provider):
    """A DeepSeek-V3 of every feature at CPU size: 3 layers (1 dense), 8 experts in 4 groups, top-4
    from 2 groups, one shared expert, q/kv ranks 32/24, YaRN x4 over 64 positions."""

    num_layers: int = 3
    hidden_size: int = 64
    ffn_hidden_size: Optional[int] = 128
    num_attention_heads: int = 4
    kv_channels: Optional[int] = 16
    q_lora_rank: Optional[int] = 32
    kv_lora_rank: int = 24
    qk_head_dim: int = 16
    qk_pos_emb_head_dim: int = 8
    v_head_dim: int = 16
    rotary_scaling_factor: float = 4.0
    original_max_position_embeddings: int = 64
    seq_length: int = 128
    max_position_embeddings: Optional[int] = 256
    vocab_size: Optional[int] = None
    num_moe_experts: Optional[int] = 8
    moe_ffn_hidden_size: Optional[int] = 32
    moe_shared_expert_intermediate_size: Optional[int] = 32
    moe_layer_freq: Union[int, List[int]] = dataclasses.field(default_factory=lambda: [0, 1, 1])
    moe_router_topk: int = 4
    moe_router_num_groups: Optional[int] = 4
    moe_router_group_topk: Optional[int] = 2
