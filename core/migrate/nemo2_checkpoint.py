"""NeMo 2.0 checkpoint directories, read without running anything NeMo wrote.

Layout (NeMo's ``nemo/lightning/ckpt_utils.py``: ``WEIGHTS_PATH = "weights"``, ``CONTEXT_PATH =
"context"``)::

    <checkpoint>/
      weights/   Megatron distributed checkpoint (.metadata, *.distcp, common.pt); model tensors are
                 keyed "module.<Megatron key>" (NeMo's MegatronParallel prefixes each chunk "module.")
      context/   model.yaml (the model's config as Hydra-style YAML: ``_target_`` + fields) and
                 io.json (fiddle's serialization of the trainer context), from ``IOMixin.io_dump``

Only ``context/model.yaml`` is read, as data (``yaml.safe_load``): ``_target_`` names a class by
string and is looked up in plugtron's fixed table, never imported. ``io.json`` is not read. The
weights are loaded by ``plugtron.checkpointing.loading.load_nemo2_weights`` (collective).
Torch-free at import.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

from plugtron.errors import CheckpointError

WEIGHTS = "weights"
CONTEXT = "context"
MODEL_YAML = "model.yaml"
KEY_PREFIX = "module."

# Architecture fields that must agree between the checkpoint and the configured model: they decide
# tensor shapes or how the weights are used. Others (dropout, fusions, init) may differ.
ARCHITECTURE = (
    "num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads", "num_query_groups", "kv_channels",
    "normalization", "gated_linear_unit", "add_bias_linear", "add_qkv_bias", "position_embedding_type",
    "rotary_base", "rotary_percent", "share_embeddings_and_output_weights", "num_moe_experts", "moe_router_topk",
    "qk_layernorm", "layernorm_epsilon", "activation_func",
)

# NeMo serializes torch dtypes and functions as {_target_: "torch.bfloat16", _call_: false}.
_DTYPES = {"torch.float32": "float32", "torch.float16": "float16", "torch.bfloat16": "bfloat16"}


def is_nemo2_checkpoint(path: str) -> bool:
    return bool(path) and os.path.isdir(os.path.join(path, WEIGHTS)) and os.path.isdir(os.path.join(path, CONTEXT))


def weights_dir(path: str) -> str:
    return os.path.join(path, WEIGHTS)


def _activation_name(target: str) -> Any:
    """``torch.nn.functional.silu`` -> ``"silu"`` when plugtron has an activation of that name."""
    from plugtron.config.converter import NAMED_CALLABLE_FIELDS

    name = target.rsplit(".", 1)[-1]
    return name if name in NAMED_CALLABLE_FIELDS["activation_func"]() else None


def read_model_config(path: str) -> Tuple[str, Dict[str, Any]]:
    """``(provider name, {field: value})`` from ``context/model.yaml``. Function- and class-valued
    fields (layer specs, init methods) are dropped: plugtron derives them."""
    import yaml

    from plugtron.migrate.table import MODEL_CONFIGS

    file = os.path.join(path, CONTEXT, MODEL_YAML)
    if not os.path.isfile(file):
        raise CheckpointError(f"{file}: missing; a NeMo 2.0 checkpoint's context/ must hold the model.yaml NeMo "
                              "writes (checkpoints from NeMo versions that wrote only io.json are not supported)")
    try:
        with open(file, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{file}: not readable YAML ({str(exc).splitlines()[0]})") from None
    config = data.get("config") if isinstance(data, dict) else None
    target = config.get("_target_") if isinstance(config, dict) else None
    if not isinstance(target, str):
        raise CheckpointError(f"{file}: expected a 'config' mapping with a '_target_' class name (NeMo's model.yaml)")
    cls = target.rsplit(".", 1)[-1]
    if cls not in MODEL_CONFIGS:
        raise CheckpointError(f"{file}: model config {target} is not supported; plugtron reads "
                              f"{', '.join(MODEL_CONFIGS)}")
    fields: Dict[str, Any] = {}
    for key, value in config.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict) and "_target_" in value:
            target_name = str(value["_target_"])
            if target_name in _DTYPES:
                fields[key] = _DTYPES[target_name]
            elif key == "activation_func":
                fields[key] = _activation_name(target_name) or target_name
            continue  # a function or class: plugtron derives it
        fields[key] = value
    return MODEL_CONFIGS[cls], fields


def provider_from_checkpoint(path: str):
    """The plugtron provider the checkpoint's model config describes (fields the provider lacks are
    ignored: NeMo-only settings such as fusions and step functions)."""
    from plugtron.config.container import resolve_types
    from plugtron.config.converter import structure, unstructure
    from plugtron.providers.gpt import GPTModelProvider
    from plugtron.providers.registry import provider_class

    resolve_types()
    name, fields = read_model_config(path)
    known = set(unstructure(provider_class(name)()))  # what a plugtron config may set (no code, nothing derived)
    data = {k: v for k, v in fields.items() if k in known and k not in ("tensor_model_parallel_size",
                                                                         "pipeline_model_parallel_size")}
    return structure({"provider": name, **data}, GPTModelProvider, source=os.path.join(path, CONTEXT, MODEL_YAML))


def architecture_mismatches(path: str, model) -> List[str]:
    """Each architecture field on which the checkpoint's model.yaml and the configured ``model`` differ."""
    _, fields = read_model_config(path)
    out = []
    for key in ARCHITECTURE:
        if key not in fields or fields[key] is None or not hasattr(model, key):
            continue
        mine = getattr(model, key)
        if key == "activation_func":
            mine = getattr(mine, "__name__", mine)
        if mine != fields[key]:
            out.append(f"{key}: checkpoint {fields[key]!r}, model section {mine!r}")
    return out


def vocab_padding_mismatch(weights: str, chunks) -> Optional[str]:
    """Megatron loads embeddings with ``allow_shape_mismatch`` (padding may change), so a checkpoint
    padded to other rows would load silently. plugtron masks padding logits, so its own checkpoints
    load at any padding; a NeMo 2.0 model was trained with its padding rows in the softmax (Megatron
    does not mask them), so it is loaded only at its own padding, named here. Reads only ``.metadata``."""
    from megatron.core.dist_checkpointing import load_tensors_metadata

    rows = {k: v.global_shape[0] for k, v in load_tensors_metadata(weights).items()
            if k in (KEY_PREFIX + "embedding.word_embeddings.weight", KEY_PREFIX + "output_layer.weight")}
    for chunk in chunks:
        for name, module in (("embedding.word_embeddings", getattr(getattr(chunk, "embedding", None), "word_embeddings", None)),
                             ("output_layer", getattr(chunk, "output_layer", None))):
            want = rows.get(f"{KEY_PREFIX}{name}.weight")
            mine = getattr(module, "num_embeddings", None) or getattr(module, "output_size", None)
            if want is not None and mine is not None and want != mine:
                return (f"{weights}: {name} has {want} rows (the padded vocabulary), this model {mine}: set "
                        f"model.make_vocab_size_divisible_by so that it x tensor_model_parallel_size pads "
                        f"model.vocab_size to {want}")
    return None


def load_bare_model(model, path: str) -> None:
    """The checkpoint's weights into a bare Megatron model (``plugtron convert``). Collective."""
    from megatron.core import dist_checkpointing

    from plugtron.checkpointing.safe_pickle import safe_loads

    sd = model.sharded_state_dict(prefix=KEY_PREFIX)
    try:
        with safe_loads():  # nothing a checkpoint holds (.metadata included) can run code while it is read
            loaded = dist_checkpointing.load(sd, weights_dir(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # torch's CheckpointException is a BaseException
        raise CheckpointError(f"{weights_dir(path)}: cannot load the NeMo 2.0 model weights "
                              f"({type(exc).__name__}: {str(exc)[:300]})") from None
    weights = {k[len(KEY_PREFIX):]: v for k, v in loaded.items() if k.startswith(KEY_PREFIX)}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("_extra_state")]
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match context/model.yaml's model "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
