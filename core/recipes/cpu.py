"""CPU-sized recipes: ``tiny`` (what ``plugtron train`` runs with no arguments), one small model per
family (``tiny_llama``, ``tiny_qwen2``, ``tiny_qwen3``, ``tiny_olmo2``, ``tiny_mixtral``, ``tiny_qwen3_moe``, ``tiny_gpt_oss``, ``tiny_deepseek_v3``, ``tiny_glm4_moe``, ``tiny_gpt2``, ``tiny_gemma3``,
``tiny_phi3``, ``tiny_t5``, ``tiny_mamba``, ``tiny_hybrid``) and ``none``.

Each trains on the byte-level corpus bundled with plugtron with the family's real architecture
(its provider class: RoPE/RMSNorm/SwiGLU for Llama, QKV biases for Qwen2, top-2 experts for
Mixtral, learned positions and tied embeddings for GPT-2, encoder-decoder span corruption for T5)
at a size whose 60 iterations (``tiny``: 300) show the loss falling within a minute or so on 2 CPU
cores. ``vocab_size`` is left to the tokenizer (257 byte ids), so the families' 32k-152k
vocabularies do not dominate the run.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

SEQ = 128


def _container(model, recipe: Optional[str] = None):
    """The recipe's ConfigContainer around ``model``; its length and batch from ``SHAPES[recipe]``
    (``_plain``'s defaults when it has no entry)."""
    from megatron.core.distributed import DistributedDataParallelConfig
    from megatron.core.optimizer import OptimizerConfig

    from plugtron.config import ConfigContainer

    lr = SHAPES.get(recipe, {}).get("lr", 2e-3)
    return ConfigContainer(
        model=model,
        optimizer=OptimizerConfig(optimizer="adam", lr=lr, min_lr=lr / 10, weight_decay=0.1, adam_beta2=0.95, clip_grad=1.0),
        ddp=DistributedDataParallelConfig(),
        **plain_sections(recipe),
    )


def _plain(iters: int = 60, lr: float = 2e-3, mbs: int = 4, gbs: int = 16, log_interval: int = 10, warmup: int = 6,
           eval_interval: int = 30) -> Dict[str, Any]:
    from plugtron.config import (
        CheckpointConfig, GPTDatasetConfig, LoggerConfig, SchedulerConfig, TokenizerConfig, TrainingConfig,
    )

    return dict(
        train=TrainingConfig(micro_batch_size=mbs, global_batch_size=gbs, train_iters=iters, eval_interval=eval_interval,
                             eval_iters=5),
        scheduler=SchedulerConfig(lr_decay_style="cosine", lr_warmup_iters=warmup),
        dataset=GPTDatasetConfig(split="949,50,1"),  # sequence_length follows model.seq_length
        tokenizer=TokenizerConfig(tokenizer_type="ByteLevelTokenizer"),
        checkpoint=CheckpointConfig(),
        logger=LoggerConfig(log_interval=log_interval),
    )


# The CPU recipes whose length, batch or learning rate differ from _plain's defaults.
SHAPES: Dict[str, Dict[str, Any]] = {
    "tiny": dict(iters=300, log_interval=20, warmup=20, eval_interval=100),
    "tiny_t5": dict(lr=3e-3, mbs=4, gbs=8),
}


def plain_sections(recipe: str) -> Dict[str, Any]:
    """Recipe ``recipe``'s torch-free sections (train, scheduler, dataset, ...) as plugtron's attrs
    objects, without Megatron: ``plugins list`` checks plugins against them. ``none``: none (the
    defaults)."""
    return {} if recipe == "none" else _plain(**SHAPES.get(recipe, {}))


# What every CPU-sized model shares: no dropout, CPU initialisation, Megatron's local layers.
_CPU: Dict[str, Any] = dict(seq_length=SEQ, hidden_dropout=0.0, attention_dropout=0.0, init_method_std=0.02,
                            use_cpu_initialization=True, transformer_impl="local", make_vocab_size_divisible_by=64)


def tiny():
    """A 4-layer RoPE/RMSNorm GPT (hidden 128), 300 iterations: ``plugtron train`` with no arguments."""
    from plugtron.providers.gpt import GPTModelProvider

    return _container(GPTModelProvider(
        num_layers=4, hidden_size=128, num_attention_heads=4, position_embedding_type="rope", normalization="RMSNorm",
        add_bias_linear=False, **_CPU), "tiny")


def tiny_llama():
    """Llama architecture (RoPE base 500000, RMSNorm, SwiGLU, grouped-query attention 4:2), 4 layers of 128."""
    from plugtron.providers.llama import Llama3Provider

    return _container(Llama3Provider(num_layers=4, hidden_size=128, num_attention_heads=4, num_query_groups=2,
                                     ffn_hidden_size=352, vocab_size=None, **_CPU))


def tiny_qwen2():
    """Qwen2 architecture (QKV biases, RoPE base 1e6, RMSNorm eps 1e-6, tied embeddings), 4 layers of 128."""
    from plugtron.providers.families import Qwen2Provider

    return _container(Qwen2Provider(num_layers=4, hidden_size=128, num_attention_heads=4, num_query_groups=2,
                                    ffn_hidden_size=352, share_embeddings_and_output_weights=True, **_CPU))


def tiny_qwen3():
    """Qwen3 architecture (per-head QK RMSNorm, head size 48 != hidden/heads, no QKV bias, tied embeddings), 4 layers of 128."""
    from plugtron.providers.qwen3 import Qwen3Provider

    return _container(Qwen3Provider(num_layers=4, hidden_size=128, num_attention_heads=4, num_query_groups=2,
                                    kv_channels=48, ffn_hidden_size=352, share_embeddings_and_output_weights=True,
                                    vocab_size=None, max_position_embeddings=None, **_CPU))


def tiny_olmo2():
    """OLMo 2 architecture (norms after attention and MLP, QK RMSNorm over the whole projections), 4 layers of 128."""
    from plugtron.providers.olmo2 import OLMo2Provider

    return _container(OLMo2Provider(num_layers=4, hidden_size=128, num_attention_heads=4, ffn_hidden_size=352,
                                    vocab_size=None, **_CPU))


def tiny_mixtral():
    """Mixtral architecture: each MLP a top-2-of-4 mixture of SwiGLU experts, 2 layers of 128."""
    from plugtron.providers.families import MixtralProvider

    return _container(MixtralProvider(num_layers=2, hidden_size=128, num_attention_heads=4, num_query_groups=2,
                                      ffn_hidden_size=256, num_moe_experts=4, vocab_size=None, **_CPU))


def tiny_qwen3_moe():
    """Qwen3-MoE architecture (QK norm, top-2 of 4 experts renormalised, no shared expert), 2 layers of 128."""
    from plugtron.providers.qwen3_moe import Qwen3MoEProvider

    return _container(Qwen3MoEProvider(num_layers=2, hidden_size=128, num_attention_heads=4, num_query_groups=2,
                                       kv_channels=48, ffn_hidden_size=352, moe_ffn_hidden_size=128, num_moe_experts=4,
                                       moe_router_topk=2, vocab_size=None, max_position_embeddings=None, **_CPU))


def tiny_deepseek_v3():
    """DeepSeek-V3 architecture (MLA with q/kv ranks and YaRN RoPE, 1 dense layer then MoE: 8 experts in 4
    groups, top-4 from 2 groups by sigmoid scores with expert bias, a shared expert), 3 layers of 64."""
    from plugtron.providers.deepseek_v3 import DeepSeekV3Tiny

    return _container(DeepSeekV3Tiny(**{**_CPU, "max_position_embeddings": 256}))


def tiny_glm4_moe():
    """GLM-4.5 MoE architecture: a dense first layer, then MoE layers of 8 experts (sigmoid routing with expert
    bias in 2 groups, top-2 scaled x2.5) plus a shared expert; RoPE on half of each head, q/k/v biases,
    QK norm; 3 layers of 128."""
    from plugtron.providers.glm4_moe import GLM45Provider, dense_then_moe

    return _container(GLM45Provider(num_layers=3, hidden_size=128, num_attention_heads=4, num_query_groups=2,
                                    kv_channels=32, ffn_hidden_size=352, num_moe_experts=8, moe_router_topk=2,
                                    moe_ffn_hidden_size=96, moe_shared_expert_intermediate_size=96,
                                    moe_layer_freq=dense_then_moe(1, 3), moe_router_num_groups=2, moe_router_group_topk=1,
                                    moe_router_topk_scaling_factor=2.5, qk_layernorm=True, vocab_size=None,
                                    max_position_embeddings=None, **_CPU))


def tiny_gpt_oss():
    """gpt-oss architecture (attention sinks, window-32 layers alternating with full ones, YaRN x4 over 32
    positions, biases, top-2 of 4 clamped-SwiGLU experts), 2 layers of 128."""
    from plugtron.providers.gpt_oss import GptOssProvider

    return _container(GptOssProvider(num_layers=2, hidden_size=128, num_attention_heads=4, num_query_groups=2,
                                     kv_channels=32, ffn_hidden_size=128, moe_ffn_hidden_size=128, num_moe_experts=4,
                                     moe_router_topk=2, window_size=(31, 0), yarn_rotary_scaling_factor=4.0,
                                     yarn_original_max_position_embeddings=32, vocab_size=None,
                                     max_position_embeddings=None, **_CPU))


def tiny_gpt2():
    """GPT-2 architecture (learned positions, LayerNorm, tanh-GELU, biases, tied embeddings), 4 layers of 128."""
    from plugtron.providers.families import GPT2Provider

    return _container(GPT2Provider(num_layers=4, hidden_size=128, num_attention_heads=4, **_CPU))


def tiny_gemma3():
    """Gemma 3 architecture (post-norms, QK norms, GeGLU, sliding-window layers of 32 tokens with their own
    RoPE base alternating with global ones, scaled embeddings, tied), 4 layers of 128."""
    from plugtron.providers.gemma3 import Gemma3Provider

    return _container(Gemma3Provider(num_layers=4, hidden_size=128, num_attention_heads=4, num_query_groups=2,
                                     kv_channels=32, ffn_hidden_size=352, window_size=(31, 0), window_attn_skip_freq=2,
                                     vocab_size=None, **_CPU))


def tiny_phi3():
    """Phi-3 with Phi-4-mini's shape (RoPE on 3/4 of each head, grouped-query attention 4:2, tied
    embeddings, SwiGLU), 4 layers of 128."""
    from plugtron.providers.phi3 import Phi3Provider

    return _container(Phi3Provider(num_layers=4, hidden_size=128, num_attention_heads=4, num_query_groups=2,
                                   ffn_hidden_size=352, rotary_percent=0.75, share_embeddings_and_output_weights=True,
                                   vocab_size=None, **_CPU))


def tiny_t5():
    """T5 encoder-decoder (2 + 2 layers of 64) on span corruption: encoder 128, decoder 64 tokens."""
    from plugtron.providers.t5 import T5ModelProvider

    return _container(T5ModelProvider(num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=128,
                                      seq_length_dec=64, **{**_CPU, "make_vocab_size_divisible_by": 8}), "tiny_t5")


# Mamba-2 mixers of 128: expand 2 -> 8 heads of 32 in 2 groups, state 32, one 128-token chunk per sequence.
_MAMBA: Dict[str, Any] = dict(hidden_size=128, num_attention_heads=4, mamba_head_dim=32, mamba_num_groups=2,
                              mamba_state_dim=32, vocab_size=None, **_CPU)


def tiny_mamba():
    """Pure Mamba-2 (SSD scan, causal conv, gated RMSNorm; pure-PyTorch kernels on CPU), 4 layers of 128."""
    from plugtron.providers.mamba import MambaProvider

    return _container(MambaProvider(num_layers=4, **_MAMBA))


def tiny_hybrid():
    """Nemotron-H-style hybrid: pattern ``M-M*M-`` (Mamba-2, squared-ReLU MLP, one attention layer), 6 layers of 128."""
    from megatron.core.activations import squared_relu

    from plugtron.providers.mamba import MambaProvider

    return _container(MambaProvider(num_layers=6, hybrid_override_pattern="M-M*M-", ffn_hidden_size=352,
                                    activation_func=squared_relu, num_query_groups=2, **_MAMBA))


def defaults():
    """Megatron Bridge's defaults with nothing filled in (the model must be given)."""
    from plugtron.config import ConfigContainer

    return ConfigContainer()


# name -> (function name, one line for ``plugtron recipes list``)
RECIPES = {
    "tiny": ("tiny", "4-layer GPT on the bundled corpus, 300 iterations on CPU (the default)"),
    "tiny_llama": ("tiny_llama", "Llama architecture, 4 layers of 128, bundled corpus, 60 iterations on CPU"),
    "tiny_qwen2": ("tiny_qwen2", "Qwen2 architecture, 4 layers of 128, bundled corpus, 60 iterations on CPU"),
    "tiny_qwen3": ("tiny_qwen3", "Qwen3 architecture (QK norm), 4 layers of 128, bundled corpus, 60 iterations on CPU"),
    "tiny_olmo2": ("tiny_olmo2", "OLMo 2 architecture (post-norms, QK norm), 4 layers of 128, 60 iterations on CPU"),
    "tiny_mixtral": ("tiny_mixtral", "Mixtral architecture (4 experts, top-2), 2 layers of 128, 60 iterations on CPU"),
    "tiny_qwen3_moe": ("tiny_qwen3_moe", "Qwen3-MoE architecture (4 experts, top-2, QK norm), 2 layers of 128, 60 iterations on CPU"),
    "tiny_deepseek_v3": ("tiny_deepseek_v3", "DeepSeek-V3 architecture (MLA, YaRN, dense + MoE layers, grouped sigmoid routing), 3 layers of 64, 60 iterations on CPU"),
    "tiny_glm4_moe": ("tiny_glm4_moe", "GLM-4.5 MoE architecture (dense layer, then 8 sigmoid-routed experts + a shared one), 3 layers of 128, 60 iterations on CPU"),
    "tiny_gpt_oss": ("tiny_gpt_oss", "gpt-oss architecture (sinks, sliding/full layers, YaRN, biased clamped-SwiGLU experts), 2 layers of 128, 60 iterations on CPU"),
    "tiny_gpt2": ("tiny_gpt2", "GPT-2 architecture, 4 layers of 128, bundled corpus, 60 iterations on CPU"),
    "tiny_gemma3": ("tiny_gemma3", "Gemma 3 architecture (sliding/global layers), 4 layers of 128, 60 iterations on CPU"),
    "tiny_phi3": ("tiny_phi3", "Phi-3 (Phi-4-mini's shape), 4 layers of 128, bundled corpus, 60 iterations on CPU"),
    "tiny_t5": ("tiny_t5", "T5 encoder-decoder, 2+2 layers of 64, span corruption, 60 iterations on CPU"),
    "tiny_mamba": ("tiny_mamba", "Mamba-2 architecture (SSD), 4 layers of 128, bundled corpus, 60 iterations on CPU"),
    "tiny_hybrid": ("tiny_hybrid", "Nemotron-H-style hybrid M-M*M- (Mamba-2/MLP/attention), 6 layers of 128, 60 iterations on CPU"),
    "none": ("defaults", "Megatron Bridge's defaults, nothing filled in (give the model yourself)"),
}
for _fn, _line in RECIPES.values():
    globals()[_fn].summary = _line  # the one line `plugtron recipes list` shows (plugtron.recipes.registry)
