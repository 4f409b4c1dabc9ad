"""Hugging Face ``config.json`` <-> provider and the weight layout for gpt-oss (``GptOssForCausalLM``).

Like ``configs``: every key whose meaning Megatron reproduces is read; a value it cannot reproduce is
an ``UnsupportedArchitecture`` naming the key. Defaults are ``GptOssConfig``'s own.

HF stores the experts stacked, one row per expert, and multiplies ``x @ W`` (``[in, out]``):
``gate_up_proj`` ``[E, h, 2f]`` with gate and up *interleaved* column by column (``[..., ::2]`` is
the gate, ``[..., 1::2]`` the up projection), ``down_proj`` ``[E, f, h]``. Megatron has one module
per expert, ``linear_fc1`` ``[2f, h]`` = ``[gate; up]`` and ``linear_fc2`` ``[h, f]``.
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch

from plugtron.providers.hf.configs import Family, float_key, int_key, require
from plugtron.providers.hf.errors import UnsupportedArchitecture
from plugtron.providers.hf.gemma3_phi3 import FULL as _FULL, SLIDING as _SLIDING
from plugtron.providers.hf.gemma3_phi3 import int_if_whole as _int_if_whole, layer_pattern as _layer_pattern
from plugtron.providers.hf.gemma3_phi3 import refuse as _refuse, skip_freq as _skip_freq

_YARN_KEYS = {"rope_type", "type", "factor", "beta_fast", "beta_slow", "original_max_position_embeddings", "truncate"}


def _rope(cfg: dict) -> Dict[str, Any]:
    """Plain RoPE (``rope_scaling`` null) or YaRN without an explicit attention factor / mscale."""
    rs = cfg.get("rope_scaling")
    if not rs:
        return {"position_embedding_type": "rope"}
    kind = rs.get("rope_type", rs.get("type")) if isinstance(rs, dict) else None
    if kind == "default" and set(rs) <= {"rope_type", "type"}:
        return {"position_embedding_type": "rope"}
    if kind != "yarn" or set(rs) - _YARN_KEYS or not isinstance(rs.get("truncate", True), bool):
        raise UnsupportedArchitecture(
            f"config.json: rope_scaling={rs!r:.200} is not supported for gpt-oss (only null or YaRN with the keys "
            f"{', '.join(sorted(_YARN_KEYS))}: no attention_factor/mscale)")
    where = "config.json: rope_scaling"
    return dict(
        position_embedding_type="yarn",
        yarn_rotary_scaling_factor=float_key(rs, "factor", where=where),
        yarn_original_max_position_embeddings=int_key(rs, "original_max_position_embeddings",
                                                      int_key(cfg, "max_position_embeddings", 131072), where=where),
        yarn_beta_fast=float(rs.get("beta_fast") or 32.0), yarn_beta_slow=float(rs.get("beta_slow") or 1.0),
        yarn_mscale=None, yarn_mscale_all_dim=None, yarn_correction_range_round_to_int=rs.get("truncate", True),
    )


def gpt_oss(cfg: dict) -> Dict[str, Any]:
    require(cfg, "hidden_act", ("silu",), "silu")  # GptOssConfig's label; the experts' activation is fixed
    _refuse(cfg, "quantization_config", "MXFP4 experts: load the model in transformers with "
            "quantization_config=Mxfp4Config(dequantize=True), save_pretrained it, and import that directory",
            lambda v: v is None)
    layers, h = int_key(cfg, "num_hidden_layers", 36), int_key(cfg, "hidden_size", 2880)
    heads, f = int_key(cfg, "num_attention_heads", 64), int_key(cfg, "intermediate_size", 2880)
    kw = dict(
        num_layers=layers, hidden_size=h, num_attention_heads=heads,
        num_query_groups=int_key(cfg, "num_key_value_heads", 8), kv_channels=int_key(cfg, "head_dim", 64),
        ffn_hidden_size=f, moe_ffn_hidden_size=f, num_moe_experts=int_key(cfg, "num_local_experts", 128),
        moe_router_topk=int_key(cfg, "num_experts_per_tok", 4), vocab_size=int_key(cfg, "vocab_size", 201088),
        seq_length=int_key(cfg, "max_position_embeddings", 131072),
        max_position_embeddings=int_key(cfg, "max_position_embeddings", 131072),
        layernorm_epsilon=float_key(cfg, "rms_norm_eps", 1e-5),
        rotary_base=_int_if_whole(float_key(cfg, "rope_theta", 150000.0)),
        share_embeddings_and_output_weights=bool(cfg.get("tie_word_embeddings", False)),
        attention_dropout=float_key(cfg, "attention_dropout", 0.0), hidden_dropout=0.0,
        # HF adds its auxiliary loss only with output_router_logits, computed on the post-top-k scores
        # (not Megatron's formula): the import trains without one; model.moe_aux_loss_coeff sets one.
        moe_aux_loss_coeff=0.0,
        **_rope(cfg),
    )
    sliding = _layer_pattern({"layer_types": cfg.get("layer_types") or
                              [_SLIDING if (i + 1) % 2 else _FULL for i in range(layers)]}, layers)
    if any(sliding):
        kw["window_size"] = (int_key(cfg, "sliding_window", 128) - 1, 0)  # a query sees `window` keys, itself included
        kw["window_attn_skip_freq"] = None if all(sliding) else _skip_freq(sliding)
    else:
        kw["window_size"], kw["window_attn_skip_freq"] = None, None
    return kw


def gpt_oss_hf(p) -> Dict[str, Any]:
    from megatron.core.transformer.utils import is_layer_window_attention

    sliding = [bool(p.window_size) and is_layer_window_attention(p.window_size, p.window_attn_skip_freq, i + 1)
               for i in range(p.num_layers)]
    out = dict(
        num_hidden_layers=p.num_layers, hidden_size=p.hidden_size, num_attention_heads=p.num_attention_heads,
        num_key_value_heads=p.num_query_groups or p.num_attention_heads,
        head_dim=p.kv_channels or p.hidden_size // p.num_attention_heads, intermediate_size=p.moe_ffn_hidden_size,
        num_local_experts=p.num_moe_experts, num_experts_per_tok=p.moe_router_topk, vocab_size=p.vocab_size,
        max_position_embeddings=p.max_position_embeddings or p.seq_length, rms_norm_eps=p.layernorm_epsilon,
        rope_theta=float(p.rotary_base), tie_word_embeddings=p.share_embeddings_and_output_weights,
        hidden_act="silu", attention_dropout=p.attention_dropout, attention_bias=True,
        sliding_window=p.window_size[0] + 1 if p.window_size else 128,
        layer_types=[_SLIDING if s else _FULL for s in sliding], rope_scaling=None,
    )
    if p.position_embedding_type == "yarn":
        out["rope_scaling"] = {"rope_type": "yarn", "factor": float(p.yarn_rotary_scaling_factor),
                               "beta_fast": float(p.yarn_beta_fast), "beta_slow": float(p.yarn_beta_slow),
                               "original_max_position_embeddings": p.yarn_original_max_position_embeddings,
                               "truncate": bool(p.yarn_correction_range_round_to_int)}
    return out


def check_reproducible(p) -> None:
    """What ``GptOssForCausalLM`` fixes and a provider could change: refused on export by name."""
    fixed = {"gated_linear_unit": True, "glu_linear_offset": 1.0, "activation_func_clamp_value": 7.0,
             "add_bias_linear": True, "softmax_type": "learnable", "normalization": "RMSNorm",
             "moe_router_pre_softmax": False, "moe_shared_expert_intermediate_size": None}
    for name, want in fixed.items():
        if getattr(p, name) != want:
            raise UnsupportedArchitecture(f"model.{name}={getattr(p, name)!r}: GptOssForCausalLM has {want!r}")
    if getattr(p.activation_func, "__name__", "") != "quick_gelu":
        raise UnsupportedArchitecture("model.activation_func: GptOssForCausalLM's experts use quick_gelu")


def _expert_rules(p, i: int) -> List[Any]:
    from plugtron.providers.hf.weights import Rule

    h, f, E = p.hidden_size, p.moe_ffn_hidden_size, p.num_moe_experts
    x, X = f"model.layers.{i}.mlp.experts.", f"decoder.layers.{i}.mlp.experts.local_experts."

    def fc1_weight(t):  # [h, 2f] interleaved -> [2f, h] = [gate; up]
        return torch.cat([t[:, 0::2], t[:, 1::2]], 1).t().contiguous()

    def fc1_weight_back(t):
        g, u = t.t().chunk(2, 1)
        return (torch.stack([g, u], 2).reshape(h, 2 * f).contiguous(),)

    def fc1_bias(t):
        return torch.cat([t[0::2], t[1::2]], 0)

    def fc1_bias_back(t):
        return (torch.stack(t.chunk(2, 0), 1).reshape(2 * f).contiguous(),)

    rules = []  # grouped by HF tensor: the reader keeps one stacked tensor at a time
    for hf, mc, shape, fuse, split in (
        ("gate_up_proj", "linear_fc1.weight", (h, 2 * f), fc1_weight, fc1_weight_back),
        ("gate_up_proj_bias", "linear_fc1.bias", (2 * f,), fc1_bias, fc1_bias_back),
        ("down_proj", "linear_fc2.weight", (f, h), lambda t: t.t().contiguous(), lambda t: (t.t().contiguous(),)),
        ("down_proj_bias", "linear_fc2.bias", (h,), lambda t: t.clone(), lambda t: (t,)),
    ):
        rules += [Rule(f"{X}{e}.{mc}", (x + hf,), (shape,), fuse, split, rows=(e,)) for e in range(E)]
    return rules


def gpt_oss_rules(p) -> list:
    from plugtron.providers.hf.weights import copy_rule, qkv_rule

    check_reproducible(p)
    h, nh = p.hidden_size, p.num_attention_heads
    ng, hd = p.num_query_groups or nh, p.kv_channels or h // nh
    V, E = p.vocab_size, p.num_moe_experts
    rules = [copy_rule("model.embed_tokens.weight", "embedding.word_embeddings.weight", (V, h))]
    for i in range(p.num_layers):
        L, M = f"model.layers.{i}.", f"decoder.layers.{i}."
        a, A = L + "self_attn.", M + "self_attention."
        qkv = tuple(a + n for n in ("q_proj", "k_proj", "v_proj"))
        rules += [
            copy_rule(L + "input_layernorm.weight", M + "input_layernorm.weight", (h,)),
            qkv_rule(tuple(n + ".weight" for n in qkv), A + "linear_qkv.weight", nh, ng, hd, (h,)),
            qkv_rule(tuple(n + ".bias" for n in qkv), A + "linear_qkv.bias", nh, ng, hd, ()),
            copy_rule(a + "o_proj.weight", A + "linear_proj.weight", (h, nh * hd)),
            copy_rule(a + "o_proj.bias", A + "linear_proj.bias", (h,)),
            copy_rule(a + "sinks", A + "core_attention.softmax_offset", (nh,)),
            copy_rule(L + "post_attention_layernorm.weight", M + "pre_mlp_layernorm.weight", (h,)),
            copy_rule(L + "mlp.router.weight", M + "mlp.router.weight", (E, h)),
            copy_rule(L + "mlp.router.bias", M + "mlp.router.bias", (E,)),
        ]
        rules += _expert_rules(p, i)
    rules.append(copy_rule("model.norm.weight", "decoder.final_layernorm.weight", (h,)))
    if not p.share_embeddings_and_output_weights:
        rules.append(copy_rule("lm_head.weight", "output_layer.weight", (V, h)))
    return rules


# Registered in the entry-point group ``plugtron.hf`` (pyproject.toml), like every family.
GPT_OSS = Family("gpt_oss", "GptOssForCausalLM", "gpt_oss", gpt_oss, gpt_oss_hf, gpt_oss_rules)
