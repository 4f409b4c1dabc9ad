"""Hugging Face ``config.json`` <-> provider and the weight layout for GLM-4.5 MoE (``Glm4MoeForCausalLM``).

Every key whose meaning Megatron reproduces is read; the others are ``UnsupportedArchitecture``
naming the key. Two limits of Megatron-Core 0.16's sigmoid router:

- it always renormalises the kept scores when more than one expert is kept, so
  ``norm_topk_prob=false`` (with ``num_experts_per_tok`` > 1) is refused;
- grouped routing ranks a group by the sum of its top ``topk / group_topk`` scores where Hugging
  Face sums its top 2, so ``n_group`` > 1 needs ``num_experts_per_tok / topk_group == 2`` (true of
  DeepSeek-V3's 8 / 4). Hugging Face also zeroes the scores of the groups it drops where Megatron
  sets them to minus infinity; both pick the same experts whenever score + correction bias is
  positive, as sigmoid scores with the released biases are.

Multi-token-prediction weights (``num_nextn_predict_layers``: the released checkpoints' layer 92 / 46)
are not part of ``Glm4MoeForCausalLM`` (transformers drops them on load); plugtron drops them too and
says so in the log.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List

from plugtron.providers.hf.configs import Family, float_key, int_key, llama_like, llama_like_hf
from plugtron.providers.hf.errors import ConversionError, UnsupportedArchitecture

log = logging.getLogger("plugtron")


def _bool(cfg: dict, key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if not isinstance(value, bool):
        raise ConversionError(f"config.json: {key}={value!r:.40}: expected true or false")
    return value


def _routing(cfg: dict, experts: int, topk: int) -> Dict[str, Any]:
    if not _bool(cfg, "norm_topk_prob", True) and topk > 1:
        raise UnsupportedArchitecture("config.json: norm_topk_prob=false is not supported for GLM-4.5 MoE (Megatron's "
                                      "sigmoid router renormalises the kept scores whenever it keeps more than one expert)")
    groups, topk_group = int_key(cfg, "n_group", 1), int_key(cfg, "topk_group", 1)
    if groups == 1:
        return dict(moe_router_num_groups=None, moe_router_group_topk=None)
    if experts % groups or topk_group > groups or topk % topk_group or topk // topk_group != 2:
        raise UnsupportedArchitecture(
            f"config.json: n_group={groups}, topk_group={topk_group} with {experts} experts, {topk} per token: grouped "
            "routing is supported when the groups divide the experts and num_experts_per_tok / topk_group == 2 "
            "(Hugging Face ranks a group by its top-2 scores, Megatron by its top topk/topk_group)")
    return dict(moe_router_num_groups=groups, moe_router_group_topk=topk_group)


def glm4_moe(cfg: dict) -> Dict[str, Any]:
    rs = cfg.get("rope_scaling")
    if rs:
        raise UnsupportedArchitecture(f"config.json: rope_scaling={rs!r:.120} is not supported for GLM-4.5 MoE (only null)")
    kw = llama_like({**cfg, "attention_bias": False, "rope_scaling": None})  # silu, sizes, eps, RoPE base
    kw["kv_channels"] = int_key(cfg, "head_dim", kw["hidden_size"] // kw["num_attention_heads"])
    kw["layernorm_epsilon"] = float_key(cfg, "rms_norm_eps", 1e-5)  # Glm4MoeConfig's default, not Llama's
    factor = float_key(cfg, "partial_rotary_factor", 0.5)
    if not 0 < factor <= 1 or int(kw["kv_channels"] * factor) % 2:
        raise UnsupportedArchitecture(f"config.json: partial_rotary_factor={factor}: expected a number in (0, 1] giving "
                                      f"an even number of rotated dims of the {kw['kv_channels']}-dim heads")
    layers, experts, topk = kw["num_layers"], int_key(cfg, "n_routed_experts", 128), int_key(cfg, "num_experts_per_tok", 8)
    dense = cfg.get("first_k_dense_replace", 1)
    if type(dense) is not int or not 0 <= dense < layers:  # noqa: E721 (true/false are not counts)
        raise ConversionError(f"config.json: first_k_dense_replace={dense!r:.40}: expected an integer in [0, {layers})")
    moe = int_key(cfg, "moe_intermediate_size", 1408)
    kw.update(
        rotary_percent=factor, add_qkv_bias=_bool(cfg, "attention_bias", False), qk_layernorm=_bool(cfg, "use_qk_norm", False),
        num_moe_experts=experts, moe_router_topk=topk, moe_ffn_hidden_size=moe,
        moe_shared_expert_intermediate_size=moe * int_key(cfg, "n_shared_experts", 1),
        moe_layer_freq=[0] * dense + [1] * (layers - dense),
        moe_router_topk_scaling_factor=float_key(cfg, "routed_scaling_factor", 1.0),
        **_routing(cfg, experts, topk),
    )
    mtp = cfg.get("num_nextn_predict_layers") or 0
    if mtp:
        log.warning("config.json: num_nextn_predict_layers=%s: the multi-token-prediction layer(s) are not part of "
                    "Glm4MoeForCausalLM (transformers drops them too); their weights are not imported", mtp)
    return kw


def glm4_moe_hf(p) -> Dict[str, Any]:
    out = llama_like_hf(p)
    freq = _layer_pattern(p)
    shared = p.moe_shared_expert_intermediate_size
    if not shared or shared % p.moe_ffn_hidden_size:
        raise UnsupportedArchitecture(f"GLM-4.5 export: moe_shared_expert_intermediate_size={shared} must be a multiple "
                                      f"of moe_ffn_hidden_size={p.moe_ffn_hidden_size} (Hugging Face's n_shared_experts)")
    out.update(
        partial_rotary_factor=p.rotary_percent, attention_bias=p.add_qkv_bias, use_qk_norm=p.qk_layernorm,
        n_routed_experts=p.num_moe_experts, num_experts_per_tok=p.moe_router_topk,
        moe_intermediate_size=p.moe_ffn_hidden_size, n_shared_experts=shared // p.moe_ffn_hidden_size,
        first_k_dense_replace=freq.index(1), routed_scaling_factor=float(p.moe_router_topk_scaling_factor or 1.0),
        n_group=p.moe_router_num_groups or 1, topk_group=p.moe_router_group_topk or 1, norm_topk_prob=True,
    )
    return out


def _layer_pattern(p) -> List[int]:
    """0/1 per layer (dense/MoE); Hugging Face can only write dense layers first, then MoE ones."""
    freq = p.moe_layer_freq
    pattern = [1 if i % freq == 0 else 0 for i in range(p.num_layers)] if isinstance(freq, int) else list(freq)
    k = pattern.index(1) if 1 in pattern else len(pattern)
    if pattern != [0] * k + [1] * (len(pattern) - k) or k == len(pattern):
        raise UnsupportedArchitecture(f"GLM-4.5 export: moe_layer_freq={freq!r:.80}: Hugging Face's GLM-4.5 has dense "
                                      "layers first, then MoE layers (first_k_dense_replace), at least one MoE layer")
    return pattern


def glm4_moe_rules(p) -> list:
    from plugtron.providers.hf.weights import concat_rule, copy_rule, qkv_rule

    h, nh = p.hidden_size, p.num_attention_heads
    ng, hd = p.num_query_groups or nh, p.kv_channels or h // nh
    V, E = p.vocab_size, p.num_moe_experts

    def mlp(hf: str, mc: str, size: int) -> list:
        return [concat_rule((hf + "gate_proj.weight", hf + "up_proj.weight"), mc + "linear_fc1.weight", (size, h)),
                copy_rule(hf + "down_proj.weight", mc + "linear_fc2.weight", (h, size))]

    rules = [copy_rule("model.embed_tokens.weight", "embedding.word_embeddings.weight", (V, h))]
    for i, is_moe in enumerate(_layer_pattern(p)):
        L, M = f"model.layers.{i}.", f"decoder.layers.{i}."
        a, A = L + "self_attn.", M + "self_attention."
        rules += [
            copy_rule(L + "input_layernorm.weight", M + "input_layernorm.weight", (h,)),
            qkv_rule((a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"), A + "linear_qkv.weight", nh, ng, hd, (h,)),
            copy_rule(a + "o_proj.weight", A + "linear_proj.weight", (h, nh * hd)),
            copy_rule(L + "post_attention_layernorm.weight", M + "pre_mlp_layernorm.weight", (h,)),
        ]
        if p.add_qkv_bias:
            rules.append(qkv_rule((a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"), A + "linear_qkv.bias",
                                  nh, ng, hd, ()))
        if p.qk_layernorm:
            rules += [copy_rule(a + "q_norm.weight", A + "q_layernorm.weight", (hd,)),
                      copy_rule(a + "k_norm.weight", A + "k_layernorm.weight", (hd,))]
        if not is_moe:
            rules += mlp(L + "mlp.", M + "mlp.", p.ffn_hidden_size)
            continue
        rules += [copy_rule(L + "mlp.gate.weight", M + "mlp.router.weight", (E, h)),
                  copy_rule(L + "mlp.gate.e_score_correction_bias", M + "mlp.router.expert_bias", (E,))]
        for e in range(E):
            rules += mlp(f"{L}mlp.experts.{e}.", f"{M}mlp.experts.local_experts.{e}.", p.moe_ffn_hidden_size)
        rules += mlp(L + "mlp.shared_experts.", M + "mlp.shared_experts.", p.moe_shared_expert_intermediate_size)
    rules.append(copy_rule("model.norm.weight", "decoder.final_layernorm.weight", (h,)))
    if not p.share_embeddings_and_output_weights:
        rules.append(copy_rule("lm_head.weight", "output_layer.weight", (V, h)))
    return rules


def mtp_tensor(p, name: str) -> bool:
    """A multi-token-prediction layer's tensor: ``model.layers.N.*`` with N past the decoder's layers."""
    parts = name.split(".")
    return name.startswith("model.layers.") and parts[2].isdigit() and int(parts[2]) >= p.num_layers


# Registered in the entry-point group ``plugtron.hf`` (pyproject.toml), like every family.
GLM4_MOE = Family("glm4_moe", "Glm4MoeForCausalLM", "glm4_moe", glm4_moe, glm4_moe_hf, glm4_moe_rules, mtp_tensor)
