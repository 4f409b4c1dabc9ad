"""A checkpoint brings its model: with ``checkpoint.load`` (a run to resume) or
``checkpoint.pretrained_checkpoint`` (weights to start from), the model's *architecture* comes from the
checkpoint's ``run_config.yaml`` (a NeMo 2.0 checkpoint: its ``context/model.yaml``), so an SFT run
from an imported Hugging Face model needs no model dimension on the command line.

What the checkpoint decides: the provider and the fields in ``ARCHITECTURE`` (what the weights'
shapes and meaning depend on), and by default the fields in ``TRAINING`` (dropouts, MoE auxiliary
losses: what its training ran with, e.g. an imported Mixtral's ``moe_aux_loss_coeff`` 0.02 and an
imported Llama's dropout 0.0 from the Hugging Face config), unless the user sets them or names a
recipe (other than the default ``tiny`` and the bare ``none``) that sets them. What the recipe and the
user decide: everything else in the model section (parallelism, sequence length, recompute,
kernels). A ``TRAINING`` value that ends up different from the checkpoint's is stated in one log line
naming each field, both values and where the new one comes from. A field the user gives
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
    "kv_channels", "vocab_size", "max_position_embeddings", "normalization",
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
    # multi-latent attention (DeepSeek-V3) and its routing: grouped top-k, scaling of the kept scores
    "multi_latent_attention", "q_lora_rank", "kv_lora_rank", "qk_head_dim", "qk_pos_emb_head_dim", "v_head_dim",
    "rope_type", "rotary_scaling_factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "mscale",
    "mscale_all_dim", "moe_router_num_groups", "moe_router_group_topk", "moe_router_topk_scaling_factor",
    # gpt-oss: attention sinks, the clamped SwiGLU, YaRN
    "softmax_type", "glu_linear_offset", "activation_func_clamp_value", "yarn_rotary_scaling_factor",
    "yarn_original_max_position_embeddings", "yarn_beta_fast", "yarn_beta_slow", "yarn_mscale", "yarn_mscale_all_dim",
    "yarn_correction_range_round_to_int",
})
# Not the weights' shape or meaning, but how they were trained: kept from the checkpoint by default.
TRAINING = ("hidden_dropout", "attention_dropout", "moe_aux_loss_coeff", "moe_z_loss_coeff",
            "moe_router_load_balancing_type", "moe_input_jitter_eps")
DEFAULT_RECIPES = ("tiny", "none")  # not a choice about this model: the checkpoint's TRAINING values stay
# Taken from the checkpoint like the architecture, but the user may set another value: the
# vocabulary padding is a layout choice (padding logits are masked, and the embedding and output
# rows load by their global index, so a checkpoint loads at any padding; see docs/providers.md).
LAYOUT = frozenset({"make_vocab_size_divisible_by"})
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


def _recorded_tokenizer(path: str) -> Optional[Dict[str, Any]]:
    """The tokenizer section the checkpoint at ``path`` recorded, its file paths made absolute
    (they are relative to the checkpoint; ``plugtron.checkpointing.tokenizer_files``); None when
    there is none, or when it is unknown (a Hugging Face import without tokenizer files)."""
    from plugtron.checkpointing import layout
    from plugtron.config import yaml_io
    from plugtron.errors import CheckpointError

    if not os.path.isdir(path):
        return None
    try:
        ckpt_dir = layout.resolve_checkpoint_dir(path, "checkpoint")
    except CheckpointError:
        return None
    file = os.path.join(ckpt_dir, layout.RUN_CONFIG)
    tok = (yaml_io.load_file(file) or {}).get("tokenizer") if os.path.isfile(file) else None
    if not isinstance(tok, dict):
        return None
    kind = tok.get("tokenizer_type", "ByteLevelTokenizer")
    if kind == "ByteLevelTokenizer" and os.path.isfile(os.path.join(ckpt_dir, "hf_config.json")):
        return None
    out = dict(tok)
    for field in ("tokenizer_model", "vocab_file", "merge_file"):
        value = out.get(field)
        if isinstance(value, str) and value and not os.path.isabs(value):
            inside = os.path.join(os.path.abspath(ckpt_dir), value)
            if os.path.exists(inside):
                out[field] = inside
    return out


def _tokenizer_label(tok: Dict[str, Any]) -> str:
    model = tok.get("tokenizer_model") or tok.get("vocab_file")
    return f"{tok.get('tokenizer_type', 'ByteLevelTokenizer')}" + (f" {model}" if model else "")


def apply_tokenizer(data: Dict[str, Any], user_set: Dict[str, str]) -> List[str]:
    """A run from a checkpoint uses the tokenizer that checkpoint recorded (``import-hf`` records
    the model's own) unless the user set a ``tokenizer.*`` field: a fine-tuning run need not repeat
    it. In place on the merged config ``data``; returns a note naming both when the user's tokenizer
    replaces a different recorded one (never silent: the model was trained on the recorded ids)."""
    ck = data.get("checkpoint") if isinstance(data, dict) else None
    if not isinstance(ck, dict):
        return []
    for key in KEYS:
        path = ck.get(key)
        if isinstance(path, str) and path.strip() and not _is_nemo2(path):
            tok = _recorded_tokenizer(path)
            if tok is None:
                continue
            if not any(k.startswith("tokenizer.") or k == "tokenizer" for k in user_set):
                data["tokenizer"] = tok
                return []
            mine = data.get("tokenizer") if isinstance(data.get("tokenizer"), dict) else {}
            if _tokenizer_label(mine) != _tokenizer_label(tok):
                return [f"tokenizer: {_tokenizer_label(mine)} (yours) replaces {_tokenizer_label(tok)}, the tokenizer "
                        f"checkpoint.{key} recorded; the model learned that tokenizer's ids"]
            return []
    return []


def _is_nemo2(path: str) -> bool:
    from plugtron.migrate.nemo2_checkpoint import is_nemo2_checkpoint

    return os.path.isdir(path) and is_nemo2_checkpoint(path)


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


def apply(data: Dict[str, Any], user_model: Dict[str, Any], user_sources: Dict[str, str],
          recipe: str = "tiny") -> List[str]:
    """Put the checkpoint's architecture (and, unless ``recipe`` is a named one, its ``TRAINING``
    values) into ``data["model"]`` (in place); returns the problems (user-given fields that
    contradict the architecture), empty when ``data`` names no checkpoint."""
    found = checkpoint_model(data)
    if found is None:
        return []
    ckpt, file, key, check = found
    user_model = {k: v for k, v in user_model.items() if v is not None}  # null: "not given" (e.g. vocab_size: derive)
    from plugtron.providers.registry import provider_class

    arch = {k: v for k, v in ckpt.items() if k in ARCHITECTURE or k in LAYOUT}
    if (arch.get("position_embedding_type") == "learned_absolute" and "max_position_embeddings" in arch
            and arch["max_position_embeddings"] is None and "seq_length" in ckpt):
        arch["max_position_embeddings"] = ckpt["seq_length"]  # the learned position table was this long
    problems = []
    for name, given in user_model.items():
        if check and name in arch and name not in LAYOUT and given != arch[name]:
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
    trained = {} if recipe not in DEFAULT_RECIPES else {k: ckpt[k] for k in TRAINING if k in ckpt and k in fields}
    data["model"] = {"provider": provider, **kept, **trained, **arch,
                     **{k: v for k, v in user_model.items() if k != "provider"}}
    _state_training_differences(data["model"], ckpt, file, user_model, user_sources, recipe)
    return []


def _state_training_differences(model: Dict[str, Any], ckpt: Dict[str, Any], file: str, user_model: Dict[str, Any],
                                user_sources: Dict[str, str], recipe: str) -> None:
    """One log line naming every ``TRAINING`` field whose value differs from the checkpoint's."""
    import logging

    diffs = []
    for k in TRAINING:
        if k in ckpt and k in model and model[k] != ckpt[k]:
            where = user_sources.get(f"model.{k}", "the config") if k in user_model else f"recipe {recipe!r}"
            diffs.append(f"model.{k} {_shown(model[k])} (checkpoint {_shown(ckpt[k])}; from {where})")
    if diffs:
        logging.getLogger("plugtron").info(f"training settings that differ from the checkpoint's ({file}): "
                                           + ", ".join(diffs))


def _length_limit(ckpt: Dict[str, Any]) -> Optional[int]:
    """The longest sequence the checkpoint's model was built for: its ``max_position_embeddings``
    (the position table or the RoPE context it was trained at), else its ``seq_length``."""
    for name in ("max_position_embeddings", "seq_length"):
        value = ckpt.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def apply_seq_length(data: Dict[str, Any], user_set: Dict[str, str]) -> Tuple[List[str], List[str]]:
    """Sequence length follows the model it trains: a recipe's ``model.seq_length`` longer than the
    checkpoint's model allows is cut to the model's (a note says so); one the user set is an
    error naming both values. Then the SFT packing size and the dataset's length follow
    ``model.seq_length`` unless the user set them. In place on ``data``; returns (problems, notes)."""
    problems: List[str] = []
    notes: List[str] = []
    model = data.get("model") if isinstance(data.get("model"), dict) else None
    found = checkpoint_model(data)
    if model is not None and found is not None and isinstance(model.get("seq_length"), int):
        ckpt, file, key, _check = found
        limit, seq = _length_limit(ckpt), model["seq_length"]
        if limit is not None and seq > limit:
            if "model.seq_length" in user_set:
                problems.append(f"model.seq_length: {seq} ({user_set['model.seq_length']}) is longer than the model "
                                f"of checkpoint.{key} allows: max_position_embeddings {limit} ({file}); set "
                                f"model.seq_length to at most {limit}")
            else:
                model["seq_length"] = limit
                notes.append(f"model.seq_length: {limit}, the max_position_embeddings of checkpoint.{key}'s model "
                             f"({file}); the recipe's {seq} is longer than the model allows")
    _follow_seq_length(data, user_set)
    return problems, notes


def _follow_seq_length(data: Dict[str, Any], user_set: Dict[str, str]) -> None:
    """One sequence length: the dataset's length and the SFT packing size are the model's unless the
    user set them (then ``validate()`` names any difference)."""
    model, dataset = data.get("model"), data.get("dataset")
    if not (isinstance(model, dict) and isinstance(dataset, dict)) or not isinstance(model.get("seq_length"), int):
        return
    seq = model["seq_length"]
    for field in ("seq_length", "sequence_length"):
        if dataset.get(field) is not None and f"dataset.{field}" not in user_set:
            dataset[field] = None  # follows model.seq_length (validate derives it)
    specs = dataset.get("packed_sequence_specs")
    key = "dataset.packed_sequence_specs.packed_sequence_size"
    if isinstance(specs, dict) and isinstance(specs.get("packed_sequence_size"), int) and key not in user_set:
        if specs["packed_sequence_size"] > 0:  # packing on: one packed row is one model sequence
            specs["packed_sequence_size"] = seq
