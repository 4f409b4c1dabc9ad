"""Hugging Face ``Mamba2ForCausalLM`` <-> ``MambaProvider`` (pure Mamba-2, no attention or MLP layers).

The tensors line up one to one. Megatron's ``in_proj`` rows are ``[z, x, B, C, dt]`` (gate, then the
convolution's channels ``x, B, C``, then one row per head), which is exactly the order of the
Hugging Face ``in_proj`` when it has no extra MLP part (``d_mlp`` 0, what ``Mamba2Config`` builds);
``conv1d`` is ``[x, B, C]`` on both sides; ``dt_bias``, ``A_log``, ``D`` are per head; ``norm`` is the
gated RMSNorm of the mixer output (gate applied before normalising on both sides).

Refused, because Megatron-Core would compute another function:

- ``n_groups`` > 1: transformers' ``MambaRMSNormGated`` normalises over the whole inner width, Megatron's
  (like ``mamba_ssm``'s) over each of the ``n_groups`` groups; with one group they are the same;
- ``layer_norm_epsilon`` other than 1e-5 (Megatron's mixer norm has a fixed 1e-5), a ``time_step_limit``
  other than (0, inf) (Megatron does not clamp dt), ``conv_kernel`` other than 4, ``use_bias``,
  ``use_conv_bias: false``, ``rms_norm: false``, ``hidden_act`` other than silu;
- on export, a provider with attention or MLP layers (``hybrid_override_pattern`` with ``*``, ``-``, ``E``).

Import is at TP=1 (``--tp`` refused): Megatron splits ``in_proj`` per rank as ``[z_r, x_r, B_r, C_r,
dt_r]``, not as a contiguous block of rows. A training run at any TP reshards the checkpoint on load.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List

from plugtron.providers.hf.configs import Family, float_key, int_key, require
from plugtron.providers.hf.errors import ConversionError, UnsupportedArchitecture
from plugtron.providers.hf.weights import copy_rule

_NORM_EPS = 1e-5  # MambaMixer's gated RMSNorm: eps=1e-5, fixed in Megatron-Core


def _flag(cfg: dict, key: str, expected: bool, default: bool) -> None:
    value = cfg.get(key, default)
    if not isinstance(value, bool):
        raise ConversionError(f"config.json: {key}={value!r:.40}: expected true or false")
    if value is not expected:
        raise UnsupportedArchitecture(f"config.json: {key}={str(value).lower()} is not supported for Mamba-2 "
                                      f"(Megatron-Core's Mamba layer has {str(expected).lower()})")


def mamba2(cfg: dict) -> Dict[str, Any]:
    require(cfg, "hidden_act", ("silu",), "silu")
    _flag(cfg, "use_bias", False, False)
    _flag(cfg, "use_conv_bias", True, True)
    _flag(cfg, "rms_norm", True, True)
    if int_key(cfg, "conv_kernel", 4) != 4:
        raise UnsupportedArchitecture(f"config.json: conv_kernel={cfg['conv_kernel']} is not supported (Megatron-Core's "
                                      "Mamba layer uses a causal convolution of width 4)")
    groups = int_key(cfg, "n_groups", 8)
    if groups != 1:
        raise UnsupportedArchitecture(
            f"config.json: n_groups={groups} is not supported: transformers' gated RMSNorm normalises the mixer output "
            "over its whole width, Megatron-Core's over each group, which differ unless n_groups is 1")
    eps = float_key(cfg, "layer_norm_epsilon", 1e-5)
    if eps != _NORM_EPS:
        raise UnsupportedArchitecture(f"config.json: layer_norm_epsilon={eps} is not supported (Megatron-Core's Mamba "
                                      "mixer norm uses 1e-5)")
    limit = cfg.get("time_step_limit", (0.0, math.inf))
    if not isinstance(limit, (list, tuple)) or len(limit) != 2 or limit[0] != 0.0 or limit[1] != math.inf:
        raise UnsupportedArchitecture(f"config.json: time_step_limit={limit!r:.60} is not supported (Megatron-Core does "
                                      "not clamp the time step: only (0, inf))")
    h, heads, head_dim = int_key(cfg, "hidden_size"), int_key(cfg, "num_heads", 128), int_key(cfg, "head_dim", 64)
    expand = cfg.get("expand", 2)
    if heads * head_dim != expand * h:
        raise ConversionError(f"config.json: num_heads x head_dim = {heads * head_dim} must equal expand x hidden_size "
                              f"= {expand * h}")
    layers = int_key(cfg, "num_hidden_layers")
    return dict(
        num_layers=layers, hidden_size=h, ffn_hidden_size=h, num_attention_heads=1, vocab_size=int_key(cfg, "vocab_size"),
        mamba_num_heads=heads, mamba_head_dim=head_dim, mamba_num_groups=1, mamba_state_dim=int_key(cfg, "state_size", 128),
        hybrid_override_pattern="M" * layers, layernorm_epsilon=eps,
        share_embeddings_and_output_weights=bool(cfg.get("tie_word_embeddings", False)),
        seq_length=int_key(cfg, "max_position_embeddings", 4096),
    )


def _check_exportable(p) -> None:
    pattern = "".join(p.layer_pattern())
    if set(pattern) != {"M"}:
        raise UnsupportedArchitecture(
            f"model: layer pattern {pattern!r} has attention/MLP layers; Mamba2ForCausalLM holds Mamba layers only")
    if p.mamba_num_groups != 1:
        raise UnsupportedArchitecture(f"model.mamba_num_groups={p.mamba_num_groups}: Mamba2ForCausalLM's gated RMSNorm "
                                      "equals Megatron-Core's only with one group")
    if p.layernorm_epsilon != _NORM_EPS:
        raise UnsupportedArchitecture(f"model.layernorm_epsilon={p.layernorm_epsilon}: Mamba2ForCausalLM uses one "
                                      "epsilon for every norm and Megatron's mixer norm has 1e-5")


def _sizes(p):
    heads = p.mamba_num_heads or (2 * p.hidden_size) // p.mamba_head_dim
    return heads, heads * p.mamba_head_dim


def mamba2_hf(p) -> Dict[str, Any]:
    _check_exportable(p)
    heads, inner = _sizes(p)
    if inner % p.hidden_size:
        raise UnsupportedArchitecture(f"model: Mamba inner width {inner} is not a multiple of hidden_size {p.hidden_size} "
                                      "(Mamba2Config's expand is an integer)")
    return dict(
        num_hidden_layers=p.num_layers, hidden_size=p.hidden_size, vocab_size=p.vocab_size, num_heads=heads,
        head_dim=p.mamba_head_dim, expand=inner // p.hidden_size, n_groups=1, state_size=p.mamba_state_dim,
        conv_kernel=4, layer_norm_epsilon=p.layernorm_epsilon, use_bias=False, use_conv_bias=True, rms_norm=True,
        hidden_act="silu", time_step_limit=[0.0, math.inf], residual_in_fp32=True,
        tie_word_embeddings=p.share_embeddings_and_output_weights,
    )


def mamba2_rules(p) -> List[Any]:
    _check_exportable(p)
    h, V, n = p.hidden_size, p.vocab_size, p.mamba_state_dim
    heads, inner = _sizes(p)
    conv = inner + 2 * n  # x, B, C (one group)
    rules = [copy_rule("backbone.embeddings.weight", "embedding.word_embeddings.weight", (V, h))]
    for i in range(p.num_layers):
        L, M = f"backbone.layers.{i}.", f"decoder.layers.{i}."
        rules += [
            copy_rule(L + "norm.weight", M + "norm.weight", (h,)),
            copy_rule(L + "mixer.in_proj.weight", M + "mixer.in_proj.weight", (inner + conv + heads, h)),
            copy_rule(L + "mixer.conv1d.weight", M + "mixer.conv1d.weight", (conv, 1, 4)),
            copy_rule(L + "mixer.conv1d.bias", M + "mixer.conv1d.bias", (conv,)),
            copy_rule(L + "mixer.dt_bias", M + "mixer.dt_bias", (heads,)),
            copy_rule(L + "mixer.A_log", M + "mixer.A_log", (heads,)),
            copy_rule(L + "mixer.D", M + "mixer.D", (heads,)),
            copy_rule(L + "mixer.norm.weight", M + "mixer.norm.weight", (inner,)),
            copy_rule(L + "mixer.out_proj.weight", M + "mixer.out_proj.weight", (h, inner)),
        ]
    rules.append(copy_rule("backbone.norm_f.weight", "decoder.final_norm.weight", (h,)))
    if not p.share_embeddings_and_output_weights:
        rules.append(copy_rule("lm_head.weight", "output_layer.weight", (V, h)))
    return rules


# Registered in the entry-point group ``plugtron.hf`` (pyproject.toml), like every family.
MAMBA2 = Family("mamba", "Mamba2ForCausalLM", "mamba2", mamba2, mamba2_hf, mamba2_rules)
