"""A checkpoint brings its model: with ``checkpoint.load`` (a run to resume) or
``checkpoint.pretrained_checkpoint`` (weights to start from), the model's *architecture* comes from the
checkpoint's ``run_config.yaml`` (a NeMo 2.0 checkpoint: its ``context/model.yaml``), so an SFT run
from an imported Hugging Face model needs no model dimension on the command line.

What the checkpoint decides: the provider and the fields in ``ARCHITECTURE`` (what the weights'
shapes and meaning depend on). What the recipe and the user still decide: everything else in the
model section (parallelism, sequence length, dropout, recompute, kernels). A field the user gives
(YAML or command line) that contradicts the checkpoint is an error naming both values; the recipe's
own architecture is simply replaced. A path that holds no checkpoint (yet) changes nothing here: a
first run of a resumable job has an empty ``load``; a missing path is reported when the run starts.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

# Fields that define the network the weights belong to (shapes, or what the weights compute).
ARCHITECTURE = frozenset({
    "num_layers", "encoder_num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads", "num_query_groups",
    "kv_channels", "vocab_size", "make_vocab_size_divisible_by", "max_position_embeddings", "normalization",
    "layernorm_epsilon", "layernorm_zero_centered_gamma", "activation_func", "gated_linear_unit",
    "position_embedding_type", "rotary_base", "rotary_percent", "rotary_interleaved", "rope_scaling",
    "rope_scaling_factor", "add_bias_linear", "add_qkv_bias", "share_embeddings_and_output_weights", "qk_layernorm",
    "apply_residual_connection_post_layernorm", "window_size", "num_moe_experts", "moe_ffn_hidden_size",
    "moe_router_topk", "moe_router_pre_softmax", "moe_router_score_function", "moe_shared_expert_intermediate_size",
    "moe_layer_freq", "moe_router_enable_expert_bias", "num_sentinel_tokens", "relative_attention_num_buckets",
    "relative_attention_max_distance", "hybrid_override_pattern", "mamba_state_dim", "mamba_head_dim",
    "mamba_num_groups", "mamba_num_heads", "window_attn_skip_freq", "softmax_scale", "seq_len_interpolation_factor",
    "rotary_base_local", "query_pre_attn_scalar", "final_logit_softcapping", "rope_short_factor", "rope_long_factor",
    "rope_original_max_position_embeddings", "rope_attention_factor",
})
KEYS = ("load", "pretrained_checkpoint")  # load first: a resumed run continues its own model


def _run_config_model(path: str) -> Optional[Tuple[Dict[str, Any], str, bool]]:
    """``(model section, where it was read, check contradictions here)`` of the checkpoint at
    ``path``, or ``None`` when
    ``path`` holds none (yet) or the checkpoint has no config to read."""
    from plugtron.checkpointing import layout
    from plugtron.config import yaml_io
    from plugtron.errors import CheckpointError

    if not os.path.isdir(path):
        return None
    from plugtron.migrate.nemo2_checkpoint import is_nemo2_checkpoint

    if is_nemo2_checkpoint(path):
        from plugtron.config.converter import unstructure
        from plugtron.migrate.nemo2_checkpoint import provider_from_checkpoint

        # the NeMo 2.0 loader compares the model section with context/model.yaml itself (and names both values)
        return unstructure(provider_from_checkpoint(path)), os.path.join(path, "context", "model.yaml"), False
    try:
        ckpt_dir = layout.resolve_checkpoint_dir(path, "checkpoint")
    except CheckpointError:
        return None  # nothing saved there yet, or not a checkpoint: the run's own checks say which
    file = os.path.join(ckpt_dir, layout.RUN_CONFIG)
    if not os.path.isfile(file):
        return None
    model = (yaml_io.load_file(file) or {}).get("model")
    return (model, file, True) if isinstance(model, dict) else None


def checkpoint_model(data: Dict[str, Any]) -> Optional[Tuple[Dict[str, Any], str, str, bool]]:
    """``(model section, file, key, check)`` of the checkpoint the merged config ``data`` names, if any."""
    ck = data.get("checkpoint") if isinstance(data, dict) else None
    if not isinstance(ck, dict):
        return None
    for key in KEYS:
        path = ck.get(key)
        if isinstance(path, str) and path.strip():
            found = _run_config_model(path)
            if found is not None:
                return found[0], found[1], key, found[2]
    return None


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def apply(data: Dict[str, Any], user_model: Dict[str, Any], user_sources: Dict[str, str]) -> List[str]:
    """Put the checkpoint's architecture into ``data["model"]`` (in place); returns the problems
    (user-given fields that contradict it), empty when ``data`` names no checkpoint."""
    found = checkpoint_model(data)
    if found is None:
        return []
    ckpt, file, key, check = found
    user_model = {k: v for k, v in user_model.items() if v is not None}  # null: "not given" (e.g. vocab_size: derive)
    from plugtron.providers.registry import provider_class

    arch = {k: v for k, v in ckpt.items() if k in ARCHITECTURE}
    if (arch.get("position_embedding_type") == "learned_absolute" and "max_position_embeddings" in arch
            and arch["max_position_embeddings"] is None and "seq_length" in ckpt):
        arch["max_position_embeddings"] = ckpt["seq_length"]  # the learned position table was this long
    problems = []
    for name, given in user_model.items():
        if check and name in arch and given != arch[name]:
            where = user_sources.get(f"model.{name}", "the config")
            problems.append(f"model.{name}: {_shown(given)} ({where}) contradicts the checkpoint's {_shown(arch[name])} "
                            f"({file}, from checkpoint.{key}); leave it out: the model's architecture comes from the checkpoint")
    if problems:
        return problems
    provider = user_model.get("provider", ckpt.get("provider", "gpt"))
    fields = set(getattr(provider_class(provider), "__dataclass_fields__", {}))
    current = data.get("model") if isinstance(data.get("model"), dict) else {}
    # The recipe's and the user's run settings, on the class the checkpoint names.
    kept = {k: v for k, v in current.items() if k not in ARCHITECTURE and k != "provider" and k in fields}
    data["model"] = {"provider": provider, **kept, **arch, **{k: v for k, v in user_model.items() if k != "provider"}}
    return []
