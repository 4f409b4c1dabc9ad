"""Tiny random Hugging Face models built locally from config objects (nothing is downloaded).

Every parameter is randomised - norms around 1, biases non-zero - so a mis-mapped norm or bias
changes the logits (HF's own init sets norms to 1 and biases to 0, which would hide it)."""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 250  # not a multiple of 128: exercises vocabulary padding (to 256 at TP=1 and TP=2)
SEQ = 16


def hf_config(family: str, vocab: int = VOCAB, positions: int = 64):
    import transformers as T

    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=positions)
    if family == "llama":  # Llama 3.1: GQA + llama3 RoPE scaling (low frequencies of head_dim 16 are scaled)
        return T.LlamaConfig(**common, rms_norm_eps=1e-5, rope_theta=500000.0, rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192})
    if family == "mistral":  # sliding window shorter than the test sequence
        return T.MistralConfig(**common, sliding_window=6, rope_theta=1e6, rms_norm_eps=1e-5)
    if family == "qwen2":  # QKV bias, tied embeddings
        return T.Qwen2Config(**common, tie_word_embeddings=True, rms_norm_eps=1e-6)
    if family == "qwen3":  # per-head QK norm, head_dim 24 != hidden/heads, tied embeddings
        return T.Qwen3Config(**common, head_dim=24, tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1e6)
    if family == "qwen3_moe":  # top-2 of 4 experts, renormalised (norm_topk_prob), head_dim 24, QK norm
        return T.Qwen3MoeConfig(**common, head_dim=24, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48,
                                norm_topk_prob=True, router_aux_loss_coef=0.0, rms_norm_eps=1e-6, rope_theta=1e6)
    if family == "glm4_moe":  # layer 0 dense, 1-2 MoE: 4 experts in 2 groups (1 kept), top-2 scaled x2.5, a shared
        # expert; QK norm, q/k/v biases, RoPE on half of each 16-dim head
        return T.Glm4MoeConfig(**{**common, "num_hidden_layers": 3}, head_dim=16, partial_rotary_factor=0.5,
                               attention_bias=True, use_qk_norm=True, n_routed_experts=4, num_experts_per_tok=2,
                               n_group=2, topk_group=1, moe_intermediate_size=48, n_shared_experts=1,
                               first_k_dense_replace=1, routed_scaling_factor=2.5, norm_topk_prob=True,
                               rms_norm_eps=1e-5, rope_theta=1e6)
    if family == "olmo2":  # post-sublayer norms, QK norm over the whole projections, untied
        return T.Olmo2Config(**common, rms_norm_eps=1e-6, rope_theta=5e5, pad_token_id=1, eos_token_id=vocab - 1)
    if family == "mixtral":
        return T.MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2, sliding_window=None)
    if family == "gemma3":  # layer 0 sliding (window 5 < SEQ), layer 1 global with linear RoPE x4; soft-capping
        return T.Gemma3TextConfig(**common, head_dim=16, sliding_window=5, sliding_window_pattern=2,
                                  query_pre_attn_scalar=24, rope_theta=1e4, rope_local_base_freq=100.0,
                                  rope_scaling={"rope_type": "linear", "factor": 4.0}, final_logit_softcapping=5.0)
    if family == "phi3":  # Phi-4-mini's shape: GQA, RoPE on 3/4 of each head (6 frequencies), tied, LongRoPE
        # with a 40-token original context (attention factor from 64/40); sliding window 6
        g = torch.Generator().manual_seed(7)
        factors = {k: (1.0 + 3.0 * torch.rand(6, generator=g)).tolist() for k in ("short_factor", "long_factor")}
        return T.Phi3Config(**common, partial_rotary_factor=0.75, tie_word_embeddings=True, sliding_window=6,
                            rope_theta=10000.0, rms_norm_eps=1e-5, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                            original_max_position_embeddings=40, rope_scaling={"type": "longrope", **factors})
    if family == "deepseek_v3":  # MLA (q/kv ranks 32/24, rope part 8 of 24), YaRN x4 over 16 positions, layer 0
        # dense, then 8 experts in 4 groups (top-4 from 2 groups, sigmoid + correction bias, x2.5) + a shared one
        return T.DeepseekV3Config(**{**common, "num_key_value_heads": 4, "num_hidden_layers": 3}, moe_intermediate_size=32,
                                  n_routed_experts=8, num_experts_per_tok=4, n_group=4, topk_group=2, n_shared_experts=1,
                                  routed_scaling_factor=2.5, first_k_dense_replace=1, q_lora_rank=32, kv_lora_rank=24,
                                  qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, rms_norm_eps=1e-6,
                                  rope_theta=10000.0, rope_scaling={"type": "yarn", "factor": 4.0, "beta_fast": 32,
                                  "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.8,
                                  "original_max_position_embeddings": 16})
    if family == "gpt_oss":  # sinks, layer 0 sliding (window 5 < SEQ), layer 1 full, YaRN x4 over 16 positions
        # (untruncated ramp), biases everywhere, top-2 of 4 clamped-SwiGLU experts (limit 7 is reached)
        return T.GptOssConfig(**common, head_dim=16, num_local_experts=4,
                              num_experts_per_tok=2, sliding_window=5, rope_theta=1e4, router_aux_loss_coef=0.0,
                              rope_scaling={"rope_type": "yarn", "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0,
                                            "truncate": False, "original_max_position_embeddings": 16})
    if family == "gpt2":
        return T.GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=positions,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    raise ValueError(family)


FAMILIES = ("llama", "mistral", "qwen2", "mixtral", "gpt2")


def build(family: str, seed: int = 0, **kwargs):
    import transformers as T

    torch.manual_seed(seed)
    cfg = hf_config(family, **kwargs)
    model = T.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "ln_" in name):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):  # a weight HF keeps as a buffer (sigmoid routers)
                b.copy_((0.1 if family == "deepseek_v3" else 0.05) * torch.randn_like(b))
        if family == "gpt_oss":  # sinks that matter; gate/up pre-activations past the clamp limit 7
            for layer in model.model.layers:
                layer.self_attn.sinks.mul_(20.0)
                layer.mlp.experts.gate_up_proj.mul_(12.0)
    return model


def save(model, path: Path, **kwargs) -> Path:
    model.save_pretrained(path, safe_serialization=True, **kwargs)
    return path


def tokens(vocab: int = VOCAB, batch: int = 2, seq: int = SEQ, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, seq), generator=g)


def megatron_logits(model, toks: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary logits of a bare Megatron GPTModel (gathered over TP when sharded)."""
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import gather_from_tensor_model_parallel_region

    model.eval()
    pos = torch.arange(toks.shape[1]).expand_as(toks)
    with torch.no_grad():
        out = model(toks, pos, None)
    if ps.get_tensor_model_parallel_world_size() > 1:
        out = gather_from_tensor_model_parallel_region(out)
    return out
