"""Hugging Face ``config.json`` <-> provider, per family. The architectures are the entry-point
group ``plugtron.hf`` (``architectures`` name -> a ``Family`` here or in a model-family package).

Each family reads only keys whose meaning Megatron reproduces exactly; a value it cannot reproduce
(another activation, an unsupported RoPE scaling type, attention bias without MLP bias) is an
``UnsupportedArchitecture`` naming the key, never a silently different model.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Dict, List, Optional

from plugtron.providers.hf.errors import ConversionError, UnsupportedArchitecture


@dataclasses.dataclass(frozen=True)
class Family:
    name: str  # also the registry name of the provider class
    architecture: str  # HF ``architectures[0]``
    model_type: str  # HF ``model_type``
    to_provider: Callable[[dict], Dict[str, Any]]
    to_hf: Callable[[Any], Dict[str, Any]]
    # provider -> the weight mapping (``weights.Rule`` list); None: plugtron's Llama or GPT-2 layout
    weights: Optional[Callable[[Any], List[Any]]] = None
    # (provider, HF tensor name) -> True for tensors the HF model class itself drops on load (e.g. the
    # multi-token-prediction layers GLM-4.5 checkpoints carry); None: every tensor must be mapped
    dropped: Optional[Callable[[Any, str], bool]] = None


def _get(cfg: dict, key: str, default: Any = ..., where: str = "config.json") -> Any:
    if key in cfg and cfg[key] is not None:
        return cfg[key]
    if default is ...:
        raise ConversionError(f"{where}: required key '{key}' is missing")
    return default


def _int(cfg: dict, key: str, default: Any = ..., where: str = "config.json") -> int:
    """A positive integer setting (a size or a count); anything else names the key."""
    value = _get(cfg, key, default, where)
    if type(value) is not int or value <= 0:  # noqa: E721 (true/false are not sizes)
        raise ConversionError(f"{where}: {key}={value!r:.60}: expected a positive integer")
    return value


def _float(cfg: dict, key: str, default: Any = ..., where: str = "config.json") -> float:
    """A finite, non-negative number (epsilon, dropout, RoPE base, loss coefficient)."""
    value = _get(cfg, key, default, where)
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ConversionError(f"{where}: {key}={value!r:.60}: expected a non-negative number")
    return float(value)


def _require(cfg: dict, key: str, allowed, default=None) -> Any:
    value = cfg.get(key, default)
    if not isinstance(value, (str, bool, int, float, type(None))) or value not in allowed:
        raise UnsupportedArchitecture(
            f"config.json: {key}={value!r} is not supported (supported: {', '.join(map(repr, allowed))})"
        )
    return value


def _rope_scaling(cfg: dict) -> Dict[str, Any]:
    rs = cfg.get("rope_scaling")
    if not rs:
        return {"rope_scaling": False}
    if not isinstance(rs, dict):
        raise ConversionError(f"config.json: rope_scaling={rs!r}: expected an object or null")
    kind = rs.get("rope_type", rs.get("type"))
    # Megatron implements exactly Llama 3.1's scaling with these constants; anything else differs.
    fixed = {"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    if kind != "llama3" or any(rs.get(k, v) != v for k, v in fixed.items()):
        raise UnsupportedArchitecture(
            f"config.json: rope_scaling={rs!r} is not supported (only rope_type 'llama3' with "
            "low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192)"
        )
    return {"rope_scaling": True, "rope_scaling_factor": _float(rs, "factor", where="config.json: rope_scaling")}


def _llama_like(cfg: dict) -> Dict[str, Any]:
    _require(cfg, "hidden_act", ("silu",), "silu")
    if cfg.get("attention_bias", False) or cfg.get("mlp_bias", False):
        raise UnsupportedArchitecture("config.json: attention_bias/mlp_bias=true is not supported for this family")
    h, heads = _int(cfg, "hidden_size"), _int(cfg, "num_attention_heads")
    kw = dict(
        num_layers=_int(cfg, "num_hidden_layers"), hidden_size=h, num_attention_heads=heads,
        num_query_groups=_int(cfg, "num_key_value_heads", heads), ffn_hidden_size=_int(cfg, "intermediate_size"),
        vocab_size=_int(cfg, "vocab_size"), seq_length=_int(cfg, "max_position_embeddings"),
        max_position_embeddings=_int(cfg, "max_position_embeddings"),
        layernorm_epsilon=_float(cfg, "rms_norm_eps", 1e-6), rotary_base=_float(cfg, "rope_theta", 10000.0),
        share_embeddings_and_output_weights=bool(cfg.get("tie_word_embeddings", False)),
        attention_dropout=_float(cfg, "attention_dropout", 0.0), hidden_dropout=0.0,
        **_rope_scaling(cfg),
    )
    head_dim = _int(cfg, "head_dim", None) if cfg.get("head_dim") is not None else None
    if head_dim and head_dim != h // heads:
        kw["kv_channels"] = head_dim
    if kw["rotary_base"].is_integer():
        kw["rotary_base"] = int(kw["rotary_base"])
    return kw


def _llama_like_hf(p) -> Dict[str, Any]:
    out = dict(
        num_hidden_layers=p.num_layers, hidden_size=p.hidden_size, num_attention_heads=p.num_attention_heads,
        num_key_value_heads=p.num_query_groups or p.num_attention_heads, intermediate_size=p.ffn_hidden_size,
        vocab_size=p.vocab_size, max_position_embeddings=p.max_position_embeddings or p.seq_length,
        rms_norm_eps=p.layernorm_epsilon,
        rope_theta=float(p.rotary_base), tie_word_embeddings=p.share_embeddings_and_output_weights,
        hidden_act="silu", attention_dropout=p.attention_dropout,
        head_dim=p.kv_channels or p.hidden_size // p.num_attention_heads,
    )
    if p.rope_scaling:
        out["rope_scaling"] = {"rope_type": "llama3", "factor": float(p.rope_scaling_factor), "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    else:
        out["rope_scaling"] = None
    return out


def _mistral(cfg: dict) -> Dict[str, Any]:
    kw = _llama_like(cfg)
    window = _int(cfg, "sliding_window") if cfg.get("sliding_window") is not None else None
    if window:  # HF lets a query see the previous `window` tokens including itself
        kw["window_size"] = (window - 1, 0)
    return kw


def _mistral_hf(p) -> Dict[str, Any]:
    out = _llama_like_hf(p)
    out["sliding_window"] = p.window_size[0] + 1 if p.window_size else None
    return out


def _qwen2(cfg: dict) -> Dict[str, Any]:
    if cfg.get("use_sliding_window", False):
        raise UnsupportedArchitecture("config.json: use_sliding_window=true is not supported for Qwen2")
    kw = _llama_like(cfg)
    kw["add_qkv_bias"] = True
    return kw


def _qwen2_hf(p) -> Dict[str, Any]:
    out = _llama_like_hf(p)
    out.pop("head_dim")
    out["use_sliding_window"] = False
    return out


def _full_attention_only(cfg: dict, family: str) -> None:
    """Families whose configs can ask for sliding-window layers (Qwen3, OLMo 2 variants): refused,
    since plugtron's providers attend to the whole causal prefix in every layer."""
    if cfg.get("use_sliding_window", False):
        raise UnsupportedArchitecture(f"config.json: use_sliding_window=true is not supported for {family} "
                                      "(every layer attends to the full causal prefix)")
    kinds = cfg.get("layer_types")
    if kinds is not None and (not isinstance(kinds, list) or any(k != "full_attention" for k in kinds)):
        raise UnsupportedArchitecture(f"config.json: layer_types={kinds!r:.120} is not supported for {family} "
                                      "(only 'full_attention' layers)")


def _qwen3(cfg: dict) -> Dict[str, Any]:
    _full_attention_only(cfg, "Qwen3")
    kw = _llama_like(cfg)
    # Qwen3Config's head_dim defaults to 128 whatever hidden/heads is; the provider's kv_channels too.
    kw["kv_channels"] = _int(cfg, "head_dim", 128)
    kw.update(qk_layernorm=True, add_qkv_bias=False)
    return kw


def _qwen3_hf(p) -> Dict[str, Any]:
    out = _llama_like_hf(p)
    out.update(use_sliding_window=False, attention_bias=False)
    return out


def _qwen3_moe(cfg: dict) -> Dict[str, Any]:
    _full_attention_only(cfg, "Qwen3-MoE")
    if cfg.get("mlp_only_layers") or _int(cfg, "decoder_sparse_step", 1) != 1:
        raise UnsupportedArchitecture("config.json: mlp_only_layers/decoder_sparse_step: only models whose every "
                                      "layer is MoE are supported for Qwen3-MoE (mlp_only_layers=[], decoder_sparse_step=1)")
    kw = _llama_like(cfg)
    # Qwen3MoeConfig has no head_dim default of its own: the attention falls back to hidden/heads.
    kw["kv_channels"] = _int(cfg, "head_dim", kw["hidden_size"] // kw["num_attention_heads"])
    norm_topk = cfg.get("norm_topk_prob", False)
    if not isinstance(norm_topk, bool):
        raise ConversionError(f"config.json: norm_topk_prob={norm_topk!r:.40}: expected true or false")
    kw.update(qk_layernorm=True, add_qkv_bias=False, num_moe_experts=_int(cfg, "num_experts"),
              moe_router_topk=_int(cfg, "num_experts_per_tok"), moe_ffn_hidden_size=_int(cfg, "moe_intermediate_size"),
              moe_router_pre_softmax=not norm_topk, moe_aux_loss_coeff=_float(cfg, "router_aux_loss_coef", 0.001))
    return kw


def _qwen3_moe_hf(p) -> Dict[str, Any]:
    out = _qwen3_hf(p)
    out.update(num_experts=p.num_moe_experts, num_experts_per_tok=p.moe_router_topk,
               moe_intermediate_size=p.moe_ffn_hidden_size, norm_topk_prob=not p.moe_router_pre_softmax,
               router_aux_loss_coef=p.moe_aux_loss_coeff, decoder_sparse_step=1, mlp_only_layers=[])
    return out


def _olmo2(cfg: dict) -> Dict[str, Any]:
    _full_attention_only(cfg, "OLMo 2")
    kw = _llama_like(cfg)  # refuses attention_bias, another hidden_act, unsupported rope_scaling
    kw["qk_layernorm"] = True
    return kw


def _olmo2_hf(p) -> Dict[str, Any]:
    out = _llama_like_hf(p)
    out.pop("head_dim")  # Olmo2Config has none: hidden_size / num_attention_heads
    out["attention_bias"] = False
    return out


def _mixtral(cfg: dict) -> Dict[str, Any]:
    kw = _mistral(cfg)
    kw.update(num_moe_experts=_int(cfg, "num_local_experts"), moe_router_topk=_int(cfg, "num_experts_per_tok"),
              moe_aux_loss_coeff=_float(cfg, "router_aux_loss_coef", 0.02),
              moe_ffn_hidden_size=kw["ffn_hidden_size"])
    if cfg.get("router_jitter_noise"):
        kw["moe_input_jitter_eps"] = _float(cfg, "router_jitter_noise")
    return kw


def _mixtral_hf(p) -> Dict[str, Any]:
    out = _mistral_hf(p)
    out.update(num_local_experts=p.num_moe_experts, num_experts_per_tok=p.moe_router_topk,
               router_aux_loss_coef=p.moe_aux_loss_coeff, router_jitter_noise=p.moe_input_jitter_eps or 0.0,
               intermediate_size=p.moe_ffn_hidden_size)
    return out


_GPT2_ACT = {"gelu_new": "fast_gelu", "gelu_pytorch_tanh": "fast_gelu", "gelu": "gelu"}


def _gpt2(cfg: dict) -> Dict[str, Any]:
    act = _require(cfg, "activation_function", tuple(_GPT2_ACT), "gelu_new")
    _require(cfg, "scale_attn_weights", (True,), True)
    _require(cfg, "scale_attn_by_inverse_layer_idx", (False,), False)
    from plugtron.config.converter import named_activations

    h = _int(cfg, "n_embd")
    return dict(
        num_layers=_int(cfg, "n_layer"), hidden_size=h, num_attention_heads=_int(cfg, "n_head"),
        ffn_hidden_size=_int(cfg, "n_inner", 4 * h), vocab_size=_int(cfg, "vocab_size"),
        seq_length=_int(cfg, "n_positions"), max_position_embeddings=_int(cfg, "n_positions"),
        layernorm_epsilon=_float(cfg, "layer_norm_epsilon", 1e-5),
        activation_func=named_activations()[_GPT2_ACT[act]],
        share_embeddings_and_output_weights=bool(cfg.get("tie_word_embeddings", True)),
        hidden_dropout=_float(cfg, "resid_pdrop", 0.1), attention_dropout=_float(cfg, "attn_pdrop", 0.1),
    )


def _gpt2_hf(p) -> Dict[str, Any]:
    from megatron.core.activations import fast_gelu

    if not p.share_embeddings_and_output_weights:
        raise UnsupportedArchitecture("GPT-2 export: untied embeddings cannot be written as GPT2LMHeadModel")
    return dict(
        n_layer=p.num_layers, n_embd=p.hidden_size, n_head=p.num_attention_heads,
        n_inner=None if p.ffn_hidden_size == 4 * p.hidden_size else p.ffn_hidden_size,
        vocab_size=p.vocab_size, n_positions=p.max_position_embeddings or p.seq_length,
        n_ctx=p.max_position_embeddings or p.seq_length,
        layer_norm_epsilon=p.layernorm_epsilon,
        activation_function="gelu_new" if p.activation_func is fast_gelu else "gelu",
        resid_pdrop=p.hidden_dropout, embd_pdrop=p.hidden_dropout, attn_pdrop=p.attention_dropout,
        tie_word_embeddings=True,
    )


LLAMA = Family("llama", "LlamaForCausalLM", "llama", _llama_like, _llama_like_hf)
MISTRAL = Family("mistral", "MistralForCausalLM", "mistral", _mistral, _mistral_hf)
QWEN2 = Family("qwen2", "Qwen2ForCausalLM", "qwen2", _qwen2, _qwen2_hf)
QWEN3 = Family("qwen3", "Qwen3ForCausalLM", "qwen3", _qwen3, _qwen3_hf)
QWEN3_MOE = Family("qwen3_moe", "Qwen3MoeForCausalLM", "qwen3_moe", _qwen3_moe, _qwen3_moe_hf)
OLMO2 = Family("olmo2", "Olmo2ForCausalLM", "olmo2", _olmo2, _olmo2_hf)
MIXTRAL = Family("mixtral", "MixtralForCausalLM", "mixtral", _mixtral, _mixtral_hf)
GPT2 = Family("gpt2", "GPT2LMHeadModel", "gpt2", _gpt2, _gpt2_hf)


def family_for(architecture: str) -> Family:
    """The ``Family`` registered for an HF architecture name (``plugtron.hf``); errors name the package."""
    from plugtron import registry
    from plugtron.errors import PluginError

    fam = registry.load("hf", architecture, "config.json architectures")
    if not isinstance(fam, Family) or fam.architecture != architecture:
        raise PluginError(f"hf {architecture!r} ({registry.entries('hf')[architecture].package}): the entry must be a "
                          f"plugtron.providers.hf.configs.Family with architecture {architecture!r}, got {fam!r:.80}")
    return fam


def _usable_families() -> List[Family]:
    """Every registered family that loads (a broken one is skipped here: only using it is an error)."""
    from plugtron import registry
    from plugtron.errors import PlugtronError

    out = []
    for arch in registry.names("hf"):
        try:
            out.append(family_for(arch))
        except PlugtronError:
            continue
    return out


def family_named(name: str) -> Family:
    for fam in _usable_families():
        if fam.name == name:
            return fam
    raise UnsupportedArchitecture(f"no Hugging Face architecture is registered for the provider {name!r}")


# The readers above, public for the family modules kept in their own files (hf.gemma3_phi3).
get_key, int_key, float_key, require = _get, _int, _float, _require
llama_like, llama_like_hf = _llama_like, _llama_like_hf


def family_of_config(cfg: dict, where: str = "config.json") -> Family:
    from plugtron import registry

    archs = cfg.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ConversionError(f"{where}: architectures={archs!r:.80}: expected a list of class names")
    for arch in archs:
        if arch in registry.entries("hf"):
            return family_for(arch)
    by_type = [f for f in _usable_families() if f.model_type == cfg.get("model_type")]
    if not archs and by_type:
        return by_type[0]
    hint = registry.suggestion(archs[0], "hf") if archs else ""
    raise UnsupportedArchitecture(
        f"{where}: architecture {archs or cfg.get('model_type')!r} is not supported{hint}; "
        f"supported: {', '.join(registry.names('hf'))} (a model-family package can add one: docs/plugins.md)"
    )


def family_of_provider(provider) -> Family:
    from plugtron.providers.registry import provider_name

    families = {f.name: f for f in _usable_families()}
    for cls in type(provider).__mro__:
        name = provider_name(cls)
        if name in families:
            return families[name]
    raise UnsupportedArchitecture(
        f"model: provider {type(provider).__name__} has no Hugging Face export (supported families: "
        f"{', '.join(families)})"
    )


def hf_config(provider, original: Optional[dict] = None) -> Dict[str, Any]:
    """config.json for ``provider``: architecture keys derived from it, other keys (token ids,
    dtype) kept from ``original`` (the imported config.json) when there is one."""
    fam = family_of_provider(provider)
    out = dict(original or {})
    out.update(fam.to_hf(provider))
    out["architectures"] = [fam.architecture]
    out["model_type"] = fam.model_type
    if "dtype" not in out and "torch_dtype" not in out:
        out["torch_dtype"] = "float32"  # the weights plugtron trains are fp32 unless imported otherwise
    return out

