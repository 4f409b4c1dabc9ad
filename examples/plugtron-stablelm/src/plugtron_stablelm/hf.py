"""``StableLmForCausalLM`` <-> ``stablelm``: config.json translation and the weight mapping.

Only what Megatron reproduces exactly is accepted: a config with per-head Q/K LayerNorm, parallel
residuals, RoPE scaling or another activation is refused, naming the key.
"""

from typing import Any, Dict, List

from plugtron.providers.hf.configs import Family
from plugtron.providers.hf.errors import ConversionError, UnsupportedArchitecture

_FIXED = {"hidden_act": "silu", "qk_layernorm": False, "use_parallel_residual": False, "rope_scaling": None}


def to_provider(cfg: dict) -> Dict[str, Any]:
    for key, value in _FIXED.items():
        if cfg.get(key, value) != value:
            raise UnsupportedArchitecture(f"config.json: {key}={cfg.get(key)!r} is not supported (only {value!r})")
    try:
        heads, theta = cfg["num_attention_heads"], float(cfg.get("rope_theta", 10000))
        kw = dict(num_layers=cfg["num_hidden_layers"], hidden_size=cfg["hidden_size"], num_attention_heads=heads,
                  num_query_groups=cfg.get("num_key_value_heads") or heads, ffn_hidden_size=cfg["intermediate_size"],
                  vocab_size=cfg["vocab_size"], seq_length=cfg["max_position_embeddings"],
                  max_position_embeddings=cfg["max_position_embeddings"], layernorm_epsilon=cfg.get("layer_norm_eps", 1e-5),
                  rotary_base=int(theta) if theta.is_integer() else theta,
                  rotary_percent=cfg.get("partial_rotary_factor", 0.25), add_qkv_bias=bool(cfg.get("use_qkv_bias", False)),
                  share_embeddings_and_output_weights=bool(cfg.get("tie_word_embeddings", False)),
                  attention_dropout=cfg.get("attention_dropout", 0.0), hidden_dropout=0.0)
    except KeyError as exc:
        raise ConversionError(f"config.json: required key {exc.args[0]!r} is missing") from None
    return kw


def to_hf(p) -> Dict[str, Any]:
    return dict(num_hidden_layers=p.num_layers, hidden_size=p.hidden_size, num_attention_heads=p.num_attention_heads,
                num_key_value_heads=p.num_query_groups or p.num_attention_heads, intermediate_size=p.ffn_hidden_size,
                vocab_size=p.vocab_size, max_position_embeddings=p.max_position_embeddings or p.seq_length,
                layer_norm_eps=p.layernorm_epsilon, rope_theta=float(p.rotary_base), partial_rotary_factor=p.rotary_percent,
                use_qkv_bias=p.add_qkv_bias, tie_word_embeddings=p.share_embeddings_and_output_weights,
                attention_dropout=p.attention_dropout, **_FIXED)


def weights(p) -> List[Any]:
    """One rule per Megatron tensor (Megatron's local layer names; plugtron handles TP and padding)."""
    from plugtron.providers.hf.weights import concat_rule, copy_rule, qkv_rule

    h, nh = p.hidden_size, p.num_attention_heads
    ng, hd, f, V = p.num_query_groups or nh, p.kv_channels or h // nh, p.ffn_hidden_size, p.vocab_size
    rules = [copy_rule("model.embed_tokens.weight", "embedding.word_embeddings.weight", (V, h))]
    for i in range(p.num_layers):
        L, M = f"model.layers.{i}.", f"decoder.layers.{i}."
        a = L + "self_attn."
        for w in ("weight", "bias"):
            rules += [copy_rule(f"{L}input_layernorm.{w}", f"{M}input_layernorm.{w}", (h,)),
                      copy_rule(f"{L}post_attention_layernorm.{w}", f"{M}pre_mlp_layernorm.{w}", (h,))]
        rules.append(qkv_rule((a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"),
                              M + "self_attention.linear_qkv.weight", nh, ng, hd, (h,)))
        if p.add_qkv_bias:
            rules.append(qkv_rule((a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"),
                                  M + "self_attention.linear_qkv.bias", nh, ng, hd, ()))
        rules += [copy_rule(a + "o_proj.weight", M + "self_attention.linear_proj.weight", (h, nh * hd)),
                  concat_rule((L + "mlp.gate_proj.weight", L + "mlp.up_proj.weight"), M + "mlp.linear_fc1.weight", (f, h)),
                  copy_rule(L + "mlp.down_proj.weight", M + "mlp.linear_fc2.weight", (h, f))]
    rules += [copy_rule(f"model.norm.{w}", f"decoder.final_layernorm.{w}", (h,)) for w in ("weight", "bias")]
    if not p.share_embeddings_and_output_weights:
        rules.append(copy_rule("lm_head.weight", "output_layer.weight", (V, h)))
    return rules


# name (the provider's registered name), HF architecture, HF model_type, and the three translations
STABLELM = Family("stablelm", "StableLmForCausalLM", "stablelm", to_provider, to_hf, weights)
