"""Hugging Face ``config.json`` <-> provider and the weight layout for Gemma 3 (text) and Phi-3.

Like ``configs``: every key whose meaning Megatron (with plugtron's Gemma 3 / Phi-3 layers)
reproduces is read; a value it cannot reproduce is an ``UnsupportedArchitecture`` naming the key.
Defaults are the ``transformers`` config classes' own (a key missing from config.json means that).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import torch

from plugtron.providers.hf.configs import Family, float_key, int_key, require
from plugtron.providers.hf.errors import UnsupportedArchitecture

# ---- Gemma 3 ----------------------------------------------------------------------------------

_SLIDING, _FULL = "sliding_attention", "full_attention"


def _refuse(cfg: dict, key: str, allowed_desc: str, ok) -> None:
    if not ok(cfg.get(key)):
        raise UnsupportedArchitecture(f"config.json: {key}={cfg.get(key)!r} is not supported ({allowed_desc})")


def _layer_pattern(cfg: dict, layers: int) -> List[bool]:
    """Which layers slide (HF's ``layer_types``, else the legacy ``sliding_window_pattern``)."""
    types = cfg.get("layer_types")
    if types is None:
        every = int_key(cfg, "sliding_window_pattern", 6)
        return [(i + 1) % every != 0 for i in range(layers)]
    if not isinstance(types, list) or len(types) != layers or any(t not in (_SLIDING, _FULL) for t in types):
        raise UnsupportedArchitecture(f"config.json: layer_types={types!r:.120}: expected {layers} entries, each "
                                      f"'{_SLIDING}' or '{_FULL}'")
    return [t == _SLIDING for t in types]


def _skip_freq(sliding: List[bool]):
    """Megatron's ``window_attn_skip_freq``: N when every N-th layer is global, else a 0/1 list."""
    for n in range(2, len(sliding) + 1):
        if sliding == [(i + 1) % n != 0 for i in range(len(sliding))]:
            return n
    return [int(s) for s in sliding]


def _int_if_whole(x: float):
    return int(x) if float(x).is_integer() else x


def gemma3(cfg: dict) -> Dict[str, Any]:
    require(cfg, "hidden_activation", ("gelu_pytorch_tanh",), cfg.get("hidden_act") or "gelu_pytorch_tanh")
    _refuse(cfg, "attention_bias", "only false", lambda v: not v)
    _refuse(cfg, "attn_logit_softcapping", "only null: Gemma 3 has no attention soft-capping", lambda v: v is None)
    _refuse(cfg, "use_bidirectional_attention", "only false (causal decoder)", lambda v: not v)
    layers, h, heads = int_key(cfg, "num_hidden_layers", 26), int_key(cfg, "hidden_size", 2304), int_key(cfg, "num_attention_heads", 8)
    kw = dict(
        num_layers=layers, hidden_size=h, num_attention_heads=heads,
        num_query_groups=int_key(cfg, "num_key_value_heads", 4), kv_channels=int_key(cfg, "head_dim", 256),
        ffn_hidden_size=int_key(cfg, "intermediate_size", 9216), vocab_size=int_key(cfg, "vocab_size", 262208),
        seq_length=int_key(cfg, "max_position_embeddings", 131072),
        max_position_embeddings=int_key(cfg, "max_position_embeddings", 131072),
        layernorm_epsilon=float_key(cfg, "rms_norm_eps", 1e-6),
        rotary_base=_int_if_whole(float_key(cfg, "rope_theta", 1e6)),
        rotary_base_local=_int_if_whole(float_key(cfg, "rope_local_base_freq", 1e4)),
        query_pre_attn_scalar=_int_if_whole(float_key(cfg, "query_pre_attn_scalar", 256)),
        share_embeddings_and_output_weights=bool(cfg.get("tie_word_embeddings", True)),
        attention_dropout=float_key(cfg, "attention_dropout", 0.0), hidden_dropout=0.0,
        final_logit_softcapping=(float_key(cfg, "final_logit_softcapping") if cfg.get("final_logit_softcapping") is not None
                                 else None),
        seq_len_interpolation_factor=_linear_rope(cfg),
    )
    sliding = _layer_pattern(cfg, layers)
    if any(sliding):
        kw["window_size"] = (int_key(cfg, "sliding_window", 4096) - 1, 0)  # HF: a query sees `window` keys, itself included
        kw["window_attn_skip_freq"] = None if all(sliding) else _skip_freq(sliding)
    else:
        kw["window_size"], kw["window_attn_skip_freq"] = None, None
    return kw


def _linear_rope(cfg: dict) -> Optional[float]:
    """Gemma 3's global-layer RoPE scaling: none, or ``linear`` (positions / factor)."""
    rs = cfg.get("rope_scaling")
    if not rs:
        return None
    kind = rs.get("rope_type", rs.get("type")) if isinstance(rs, dict) else None
    if kind == "default":
        return None
    if kind != "linear" or set(rs) - {"rope_type", "type", "factor"}:
        raise UnsupportedArchitecture(f"config.json: rope_scaling={rs!r} is not supported for Gemma 3 (only null or "
                                      "{'rope_type': 'linear', 'factor': F})")
    factor = float_key(rs, "factor", where="config.json: rope_scaling")
    return None if factor == 1.0 else factor


def gemma3_hf(p) -> Dict[str, Any]:
    from megatron.core.transformer.utils import is_layer_window_attention

    sliding = [is_layer_window_attention(p.window_size, p.window_attn_skip_freq, i + 1) for i in range(p.num_layers)]
    factor = p.seq_len_interpolation_factor
    return dict(
        num_hidden_layers=p.num_layers, hidden_size=p.hidden_size, num_attention_heads=p.num_attention_heads,
        num_key_value_heads=p.num_query_groups or p.num_attention_heads,
        head_dim=p.kv_channels or p.hidden_size // p.num_attention_heads, intermediate_size=p.ffn_hidden_size,
        vocab_size=p.vocab_size, max_position_embeddings=p.max_position_embeddings or p.seq_length,
        rms_norm_eps=p.layernorm_epsilon, rope_theta=float(p.rotary_base), rope_local_base_freq=float(p.rotary_base_local),
        query_pre_attn_scalar=p.query_pre_attn_scalar or (p.kv_channels or p.hidden_size // p.num_attention_heads),
        tie_word_embeddings=p.share_embeddings_and_output_weights, hidden_activation="gelu_pytorch_tanh",
        attention_dropout=p.attention_dropout, attention_bias=False, attn_logit_softcapping=None,
        final_logit_softcapping=p.final_logit_softcapping,
        sliding_window=p.window_size[0] + 1 if p.window_size else 4096,
        layer_types=[_SLIDING if s else _FULL for s in sliding],
        rope_scaling={"rope_type": "linear", "factor": float(factor)} if factor else None,
    )


def gemma3_rules(p) -> list:
    from plugtron.providers.hf.weights import concat_rule, copy_rule, qkv_rule

    h, nh = p.hidden_size, p.num_attention_heads
    ng, hd = p.num_query_groups or nh, p.kv_channels or h // nh
    f, V = p.ffn_hidden_size, p.vocab_size
    rules = [copy_rule("model.embed_tokens.weight", "embedding.word_embeddings.weight", (V, h))]
    for i in range(p.num_layers):
        L, M = f"model.layers.{i}.", f"decoder.layers.{i}."
        a, A = L + "self_attn.", M + "self_attention."
        rules += [
            copy_rule(L + "input_layernorm.weight", M + "input_layernorm.weight", (h,)),
            qkv_rule((a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"), A + "linear_qkv.weight", nh, ng, hd, (h,)),
            copy_rule(a + "q_norm.weight", A + "q_layernorm.weight", (hd,)),
            copy_rule(a + "k_norm.weight", A + "k_layernorm.weight", (hd,)),
            copy_rule(a + "o_proj.weight", A + "linear_proj.weight", (h, nh * hd)),
            copy_rule(L + "post_attention_layernorm.weight", M + "post_self_attn_layernorm.weight", (h,)),
            copy_rule(L + "pre_feedforward_layernorm.weight", M + "pre_mlp_layernorm.weight", (h,)),
            concat_rule((L + "mlp.gate_proj.weight", L + "mlp.up_proj.weight"), M + "mlp.linear_fc1.weight", (f, h)),
            copy_rule(L + "mlp.down_proj.weight", M + "mlp.linear_fc2.weight", (h, f)),
            copy_rule(L + "post_feedforward_layernorm.weight", M + "post_mlp_layernorm.weight", (h,)),
        ]
    rules.append(copy_rule("model.norm.weight", "decoder.final_layernorm.weight", (h,)))
    if not p.share_embeddings_and_output_weights:
        rules.append(copy_rule("lm_head.weight", "output_layer.weight", (V, h)))
    return rules


# The layer-pattern readers above, public for other families with sliding/full layers (hf.gpt_oss).
SLIDING, FULL = _SLIDING, _FULL
refuse, layer_pattern, skip_freq, int_if_whole = _refuse, _layer_pattern, _skip_freq, _int_if_whole


# ---- Phi-3 ------------------------------------------------------------------------------------


def phi3(cfg: dict) -> Dict[str, Any]:
    from plugtron.providers.hf.configs import llama_like

    kw = llama_like({**cfg, "rope_scaling": None})
    kw.update(_longrope(cfg))
    factor = float_key(cfg, "partial_rotary_factor", 1.0)
    if not 0 < factor <= 1:
        raise UnsupportedArchitecture(f"config.json: partial_rotary_factor={factor}: expected a number in (0, 1]")
    kw["rotary_percent"] = factor
    kw["hidden_dropout"] = float_key(cfg, "resid_pdrop", 0.0)
    window = cfg.get("sliding_window")
    kw["window_size"] = (int_key(cfg, "sliding_window") - 1, 0) if window is not None else None
    return kw


def _longrope(cfg: dict) -> Dict[str, Any]:
    """Phi-3's rope_scaling: null, or LongRoPE ("longrope", or its old name "su")."""
    rs = cfg.get("rope_scaling")
    if not rs:
        return {}
    kind = rs.get("rope_type", rs.get("type")) if isinstance(rs, dict) else None
    extra = set(rs) - {"rope_type", "type", "long_factor", "short_factor", "factor", "attention_factor"} if kind else set()
    if kind not in ("longrope", "su") or extra or not all(isinstance(rs.get(k), list) for k in ("long_factor", "short_factor")):
        raise UnsupportedArchitecture(f"config.json: rope_scaling={rs!r:.200} is not supported for Phi-3 (only null "
                                      "or LongRoPE: {'type': 'longrope', 'long_factor': [...], 'short_factor': [...]})")
    where = "config.json: rope_scaling"
    floats = {k: [float_key({"v": v}, "v", where=f"{where}.{k}") for v in rs[k]] for k in ("long_factor", "short_factor")}
    out = dict(rope_long_factor=floats["long_factor"], rope_short_factor=floats["short_factor"],
               rope_original_max_position_embeddings=int_key(cfg, "original_max_position_embeddings",
                                                          int_key(cfg, "max_position_embeddings")))
    if rs.get("attention_factor") is not None:
        out["rope_attention_factor"] = float_key(rs, "attention_factor", where=where)
    return out


def phi3_hf(p) -> Dict[str, Any]:
    from plugtron.providers.hf.configs import llama_like_hf

    out = llama_like_hf(p)
    out.pop("head_dim")
    out.update(partial_rotary_factor=p.rotary_percent, resid_pdrop=p.hidden_dropout, rope_scaling=None,
               sliding_window=p.window_size[0] + 1 if p.window_size else None)
    if p.rope_short_factor is not None:
        out["rope_scaling"] = {"type": "longrope", "long_factor": list(p.rope_long_factor),
                               "short_factor": list(p.rope_short_factor)}
        if p.rope_attention_factor is not None:
            out["rope_scaling"]["attention_factor"] = p.rope_attention_factor
        out["original_max_position_embeddings"] = p.rope_original_max_position_embeddings
    return out


def phi3_rules(p) -> list:
    from plugtron.providers.hf.weights import Rule, copy_rule, qkv_rule

    h, nh = p.hidden_size, p.num_attention_heads
    ng, hd = p.num_query_groups or nh, p.kv_channels or h // nh
    f, V = p.ffn_hidden_size, p.vocab_size
    rules = [copy_rule("model.embed_tokens.weight", "embedding.word_embeddings.weight", (V, h))]
    for i in range(p.num_layers):
        L, M = f"model.layers.{i}.", f"decoder.layers.{i}."
        inner = qkv_rule(("q", "k", "v"), M + "self_attention.linear_qkv.weight", nh, ng, hd, (h,))
        sizes = [nh * hd, ng * hd, ng * hd]
        rules += [
            copy_rule(L + "input_layernorm.weight", M + "input_layernorm.weight", (h,)),
            # HF's fused rows are [q; k; v]; Megatron's are grouped by KV head
            Rule(inner.mcore, (L + "self_attn.qkv_proj.weight",), ((sum(sizes), h),),
                 lambda t, _i=inner, _s=sizes: _i.fuse(*t.split(_s, 0)),
                 lambda t, _i=inner: (torch.cat(_i.split(t), 0),)),
            copy_rule(L + "self_attn.o_proj.weight", M + "self_attention.linear_proj.weight", (h, nh * hd)),
            copy_rule(L + "post_attention_layernorm.weight", M + "pre_mlp_layernorm.weight", (h,)),
            copy_rule(L + "mlp.gate_up_proj.weight", M + "mlp.linear_fc1.weight", (2 * f, h)),  # [gate; up] both
            copy_rule(L + "mlp.down_proj.weight", M + "mlp.linear_fc2.weight", (h, f)),
        ]
    rules.append(copy_rule("model.norm.weight", "decoder.final_layernorm.weight", (h,)))
    if not p.share_embeddings_and_output_weights:
        rules.append(copy_rule("lm_head.weight", "output_layer.weight", (V, h)))
    return rules


# Registered in the entry-point group ``plugtron.hf`` (pyproject.toml), like every family.
GEMMA3 = Family("gemma3", "Gemma3ForCausalLM", "gemma3_text", gemma3, gemma3_hf, gemma3_rules)
PHI3 = Family("phi3", "Phi3ForCausalLM", "phi3", phi3, phi3_hf, phi3_rules)
