"""Hugging Face ``DeepseekV3ForCausalLM`` config.json <-> ``DeepSeekV3Provider`` and its weight layout.

Every key whose meaning Megatron's MLA and router reproduce is read; a value they cannot reproduce is
an ``UnsupportedArchitecture`` naming the key. Defaults are ``DeepseekV3Config``'s own.

Routing: transformers' router sums each group's top **2** biased scores to pick groups and
renormalises the kept sigmoid scores only with ``norm_topk_prob``; Megatron sums the top
``topk / topk_group`` and always renormalises (top-k > 1). Configs where these differ are refused.
transformers masks the experts of unpicked groups with 0 and Megatron with -inf: the same choice
whenever the biased scores of the picked groups are positive (sigmoid scores in (0, 1) plus the
released models' correction biases).
"""

from __future__ import annotations

from typing import Any, Dict, List

from plugtron.providers.hf.configs import Family, float_key, int_key, require
from plugtron.providers.hf.errors import ConversionError, UnsupportedArchitecture


def _flag(cfg: dict, key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if not isinstance(value, bool):
        raise ConversionError(f"config.json: {key}={value!r:.40}: expected true or false")
    return value


def _rope(cfg: dict) -> Dict[str, Any]:
    """RoPE of the rotary part of each head: plain, or YaRN as DeepSeek-V3 ships it."""
    rs = cfg.get("rope_scaling")
    if not rs:
        return dict(rope_type="rope", rotary_scaling_factor=1.0, mscale=1.0, mscale_all_dim=0.0)
    where = "config.json: rope_scaling"
    kind = rs.get("rope_type", rs.get("type")) if isinstance(rs, dict) else None
    known = {"rope_type", "type", "factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "mscale",
             "mscale_all_dim", "truncate"}
    if kind != "yarn" or set(rs) - known or rs.get("truncate", True) is not True:
        raise UnsupportedArchitecture(f"{where}={rs!r:.200} is not supported for DeepSeek-V3 (only null or YaRN: "
                                      "rope_type 'yarn' with factor, original_max_position_embeddings, beta_fast, "
                                      "beta_slow, mscale, mscale_all_dim)")
    mscale, mscale_all_dim = rs.get("mscale"), rs.get("mscale_all_dim")
    if mscale_all_dim and not mscale:
        # transformers then scales cos/sin by mscale(factor) but the softmax by mscale_all_dim: no Megatron equivalent
        raise UnsupportedArchitecture(f"{where}: mscale_all_dim={mscale_all_dim!r} without mscale is not supported")
    both = bool(mscale and mscale_all_dim)
    return dict(
        rope_type="yarn", rotary_scaling_factor=float_key(rs, "factor", where=where),
        original_max_position_embeddings=int_key(rs, "original_max_position_embeddings",
                                                 int_key(cfg, "max_position_embeddings", 4096), where=where),
        beta_fast=float_key(rs, "beta_fast", 32.0, where=where), beta_slow=float_key(rs, "beta_slow", 1.0, where=where),
        mscale=float_key(rs, "mscale", where=where) if both else 1.0,
        mscale_all_dim=float_key(rs, "mscale_all_dim", where=where) if both else 0.0,
    )


def _routing(cfg: dict, experts: int, topk: int) -> Dict[str, Any]:
    groups, picked = int_key(cfg, "n_group", 8), int_key(cfg, "topk_group", 4)
    if experts % groups or picked > groups:
        raise ConversionError(f"config.json: n_group={groups}, topk_group={picked}: expected n_group to divide "
                              f"n_routed_experts={experts} and topk_group <= n_group")
    if not _flag(cfg, "norm_topk_prob", True) and topk > 1:
        raise UnsupportedArchitecture("config.json: norm_topk_prob=false is not supported for DeepSeek-V3 (Megatron's "
                                      "sigmoid router always renormalises the kept scores)")
    out = dict(moe_router_num_groups=None, moe_router_group_topk=None)
    if picked < groups:
        if topk % picked or topk // picked != 2 or experts // groups < 2:
            raise UnsupportedArchitecture(
                f"config.json: num_experts_per_tok={topk}, topk_group={picked}: transformers ranks groups by their top-2 "
                "scores, Megatron by their top num_experts_per_tok/topk_group: supported when that is 2")
        out.update(moe_router_num_groups=groups, moe_router_group_topk=picked)
    return out


def deepseek_v3(cfg: dict) -> Dict[str, Any]:
    require(cfg, "hidden_act", ("silu",), "silu")
    if _flag(cfg, "attention_bias", False):
        raise UnsupportedArchitecture("config.json: attention_bias=true is not supported for DeepSeek-V3")
    if not _flag(cfg, "rope_interleave", True):
        raise UnsupportedArchitecture("config.json: rope_interleave=false is not supported (Megatron's MLA RoPE "
                                      "is the interleaved one)")
    mtp = cfg.get("num_nextn_predict_layers", 0)
    if mtp:
        raise UnsupportedArchitecture(
            f"config.json: num_nextn_predict_layers={mtp!r:.20}: multi-token prediction layers are not supported "
            "(plugtron imports the main model, as transformers' DeepseekV3ForCausalLM computes it); to import without "
            "them set num_nextn_predict_layers to 0 and leave out the tensors of the layers after num_hidden_layers")
    layers, heads = int_key(cfg, "num_hidden_layers", 61), int_key(cfg, "num_attention_heads", 128)
    if int_key(cfg, "num_key_value_heads", heads) != heads:
        raise UnsupportedArchitecture(f"config.json: num_key_value_heads must equal num_attention_heads={heads} "
                                      "(MLA gives every head its own key and value)")
    dense = cfg.get("first_k_dense_replace", 3)
    if type(dense) is not int or not 0 <= dense <= layers:  # noqa: E721
        raise ConversionError(f"config.json: first_k_dense_replace={dense!r:.40}: expected 0..num_hidden_layers")
    experts, topk, ffn = int_key(cfg, "n_routed_experts", 256), int_key(cfg, "num_experts_per_tok", 8), \
        int_key(cfg, "moe_intermediate_size", 2048)
    shared = cfg.get("n_shared_experts", 1)
    if shared is not None and (type(shared) is not int or shared < 0):  # noqa: E721
        raise ConversionError(f"config.json: n_shared_experts={shared!r:.40}: expected a non-negative integer")
    q_rank = int_key(cfg, "q_lora_rank") if cfg.get("q_lora_rank") is not None else None
    rope_dim, v_dim = int_key(cfg, "qk_rope_head_dim", 64), int_key(cfg, "v_head_dim", 128)
    theta = float_key(cfg, "rope_theta", 10000.0)
    positions = int_key(cfg, "max_position_embeddings", 4096)
    kw = dict(
        num_layers=layers, hidden_size=int_key(cfg, "hidden_size", 7168), num_attention_heads=heads,
        ffn_hidden_size=int_key(cfg, "intermediate_size", 18432), vocab_size=int_key(cfg, "vocab_size", 129280),
        seq_length=positions, max_position_embeddings=positions,
        layernorm_epsilon=float_key(cfg, "rms_norm_eps", 1e-6),
        rotary_base=int(theta) if theta.is_integer() else theta,
        share_embeddings_and_output_weights=_flag(cfg, "tie_word_embeddings", False),
        attention_dropout=float_key(cfg, "attention_dropout", 0.0), hidden_dropout=0.0,
        q_lora_rank=q_rank, kv_lora_rank=int_key(cfg, "kv_lora_rank", 512),
        qk_head_dim=int_key(cfg, "qk_nope_head_dim", 128), qk_pos_emb_head_dim=rope_dim, v_head_dim=v_dim,
        kv_channels=v_dim, num_moe_experts=experts, moe_router_topk=topk, moe_ffn_hidden_size=ffn,
        moe_shared_expert_intermediate_size=ffn * shared if shared else None,
        moe_layer_freq=[0] * dense + [1] * (layers - dense),
        moe_router_topk_scaling_factor=float_key(cfg, "routed_scaling_factor", 2.5),
        # transformers trains DeepseekV3ForCausalLM without an auxiliary loss: so does the import (the
        # correction bias still follows the token counts); a config can set Megatron's seq_aux_loss back
        moe_router_load_balancing_type="none", moe_aux_loss_coeff=0.0,
        **_routing(cfg, experts, topk), **_rope(cfg),
    )
    return kw


def deepseek_v3_hf(p) -> Dict[str, Any]:
    freq = p.moe_layer_freq if isinstance(p.moe_layer_freq, list) else \
        [int(i % p.moe_layer_freq == 0) for i in range(p.num_layers)]
    dense = freq.index(1) if 1 in freq else p.num_layers
    if freq != [0] * dense + [1] * (p.num_layers - dense):
        raise UnsupportedArchitecture(f"DeepSeek-V3 export: moe_layer_freq={p.moe_layer_freq!r:.80}: Hugging Face "
                                      "models have dense layers first, then MoE layers only")
    if p.moe_shared_expert_intermediate_size and p.moe_shared_expert_intermediate_size % p.moe_ffn_hidden_size:
        raise UnsupportedArchitecture("DeepSeek-V3 export: moe_shared_expert_intermediate_size must be a multiple of "
                                      "moe_ffn_hidden_size (n_shared_experts)")
    if p.moe_router_score_function != "sigmoid" or not p.moe_router_enable_expert_bias:
        raise UnsupportedArchitecture("DeepSeek-V3 export: only the sigmoid router with expert bias is a "
                                      "DeepseekV3ForCausalLM (moe_router_score_function, moe_router_enable_expert_bias)")
    out = dict(
        num_hidden_layers=p.num_layers, hidden_size=p.hidden_size, intermediate_size=p.ffn_hidden_size,
        moe_intermediate_size=p.moe_ffn_hidden_size, num_attention_heads=p.num_attention_heads,
        num_key_value_heads=p.num_attention_heads, vocab_size=p.vocab_size,
        max_position_embeddings=p.max_position_embeddings or p.seq_length, rms_norm_eps=p.layernorm_epsilon,
        rope_theta=float(p.rotary_base), tie_word_embeddings=p.share_embeddings_and_output_weights,
        hidden_act="silu", attention_bias=False, attention_dropout=p.attention_dropout, rope_interleave=True,
        q_lora_rank=p.q_lora_rank, kv_lora_rank=p.kv_lora_rank, qk_nope_head_dim=p.qk_head_dim,
        qk_rope_head_dim=p.qk_pos_emb_head_dim, v_head_dim=p.v_head_dim,
        n_routed_experts=p.num_moe_experts, num_experts_per_tok=p.moe_router_topk,
        n_shared_experts=(p.moe_shared_expert_intermediate_size or 0) // p.moe_ffn_hidden_size,
        routed_scaling_factor=p.moe_router_topk_scaling_factor or 1.0,
        n_group=p.moe_router_num_groups or 1, topk_group=p.moe_router_group_topk or 1,
        first_k_dense_replace=dense, norm_topk_prob=True,
    )
    if p.rope_type == "yarn":
        out["rope_scaling"] = {"type": "yarn", "rope_type": "yarn", "factor": p.rotary_scaling_factor,
                               "original_max_position_embeddings": p.original_max_position_embeddings,
                               "beta_fast": p.beta_fast, "beta_slow": p.beta_slow,
                               "mscale": p.mscale, "mscale_all_dim": p.mscale_all_dim}
    else:
        out["rope_scaling"] = None
    return out


def deepseek_v3_rules(p) -> List[Any]:
    from plugtron.providers.hf.weights import concat_rule, copy_rule

    h, V, nh = p.hidden_size, p.vocab_size, p.num_attention_heads
    qk, rope, v = p.qk_head_dim, p.qk_pos_emb_head_dim, p.v_head_dim
    f, fe, E = p.ffn_hidden_size, p.moe_ffn_hidden_size, p.num_moe_experts
    fs = p.moe_shared_expert_intermediate_size
    freq = p.moe_layer_freq if isinstance(p.moe_layer_freq, list) else \
        [int(i % p.moe_layer_freq == 0) for i in range(p.num_layers)]
    rules = [copy_rule("model.embed_tokens.weight", "embedding.word_embeddings.weight", (V, h))]
    for i in range(p.num_layers):
        L, M = f"model.layers.{i}.", f"decoder.layers.{i}."
        a, A = L + "self_attn.", M + "self_attention."
        rules += [
            copy_rule(L + "input_layernorm.weight", M + "input_layernorm.weight", (h,)),
            copy_rule(a + "kv_a_proj_with_mqa.weight", A + "linear_kv_down_proj.weight", (p.kv_lora_rank + rope, h)),
            copy_rule(a + "kv_a_layernorm.weight", A + "kv_layernorm.weight", (p.kv_lora_rank,)),
            copy_rule(a + "kv_b_proj.weight", A + "linear_kv_up_proj.weight", (nh * (qk + v), p.kv_lora_rank)),
            copy_rule(a + "o_proj.weight", A + "linear_proj.weight", (h, nh * v)),
            copy_rule(L + "post_attention_layernorm.weight", M + "pre_mlp_layernorm.weight", (h,)),
        ]
        if p.q_lora_rank is None:
            rules.append(copy_rule(a + "q_proj.weight", A + "linear_q_proj.weight", (nh * (qk + rope), h)))
        else:
            rules += [copy_rule(a + "q_a_proj.weight", A + "linear_q_down_proj.weight", (p.q_lora_rank, h)),
                      copy_rule(a + "q_a_layernorm.weight", A + "q_layernorm.weight", (p.q_lora_rank,)),
                      copy_rule(a + "q_b_proj.weight", A + "linear_q_up_proj.weight", (nh * (qk + rope), p.q_lora_rank))]
        m, X = L + "mlp.", M + "mlp."
        if not freq[i]:
            rules += [concat_rule((m + "gate_proj.weight", m + "up_proj.weight"), X + "linear_fc1.weight", (f, h)),
                      copy_rule(m + "down_proj.weight", X + "linear_fc2.weight", (h, f))]
            continue
        rules += [copy_rule(m + "gate.weight", X + "router.weight", (E, h)),
                  # a buffer in both: the bias steers which experts are picked, never their weights
                  copy_rule(m + "gate.e_score_correction_bias", X + "router.expert_bias", (E,))]
        for e in range(E):
            x, Y = f"{m}experts.{e}.", f"{X}experts.local_experts.{e}."
            rules += [concat_rule((x + "gate_proj.weight", x + "up_proj.weight"), Y + "linear_fc1.weight", (fe, h)),
                      copy_rule(x + "down_proj.weight", Y + "linear_fc2.weight", (h, fe))]
        if fs:
            s, S = m + "shared_experts.", X + "shared_experts."
            rules += [concat_rule((s + "gate_proj.weight", s + "up_proj.weight"), S + "linear_fc1.weight", (fs, h)),
                      copy_rule(s + "down_proj.weight", S + "linear_fc2.weight", (h, fs))]
    rules.append(copy_rule("model.norm.weight", "decoder.final_layernorm.weight", (h,)))
    if not p.share_embeddings_and_output_weights:
        rules.append(copy_rule("lm_head.weight", "output_layer.weight", (V, h)))
    return rules


# Registered in the entry-point group ``plugtron.hf`` (pyproject.toml), like every family.
DEEPSEEK_V3 = Family("deepseek_v3", "DeepseekV3ForCausalLM", "deepseek_v3", deepseek_v3, deepseek_v3_hf,
                     deepseek_v3_rules)
