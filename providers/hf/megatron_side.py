"""The Megatron side of conversion: a process group to build the model in, filling this rank's
tensor-parallel shards from whole tensors, gathering whole tensors back, and the checkpoint layout
``checkpoint.pretrained_checkpoint`` reads::

    OUT/latest_checkpointed_iteration.txt      "0"
    OUT/iter_0000000/                          dist_checkpointing.save({"model": sharded_state_dict})
    OUT/iter_0000000/run_config.yaml           plugtron config whose `model` section is the provider
    OUT/iter_0000000/hf_config.json            the imported config.json (token ids, dtype) for export
    OUT/iter_0000000/manifest.json             size and CRC32 of every file (plugtron.checkpointing.layout)
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Dict, Tuple

import torch

from plugtron import distributed
from plugtron.checkpointing import layout, publish
from plugtron.errors import CheckpointError
from plugtron.providers.hf.errors import ConversionError

HF_CONFIG = "hf_config.json"


@contextlib.contextmanager
def megatron_world(tp: int = 1):
    """Megatron's parallel state with tensor parallel size ``tp``: reuses an initialized process
    group (torchrun) or starts a one-process gloo group; tears down only what it started."""
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    started_pg, started_mp = distributed.init_process_group(), False
    try:
        if distributed.world_size() % tp:
            raise ConversionError(f"tensor_model_parallel_size={tp} needs a multiple of {tp} processes "
                                  f"(this run has {distributed.world_size()}; start it with torchrun)")
        if not ps.model_parallel_is_initialized():
            ps.initialize_model_parallel(tensor_model_parallel_size=tp)
            started_mp = True
        elif ps.get_tensor_model_parallel_world_size() != tp:
            raise ConversionError(f"Megatron is already initialized with TP="
                                  f"{ps.get_tensor_model_parallel_world_size()}, conversion asked for TP={tp}")
        model_parallel_cuda_manual_seed(1234)  # initial values are overwritten; the RNG tracker must exist
        yield
    finally:
        if started_mp:
            ps.destroy_model_parallel()
        if started_pg:
            distributed.destroy_process_group()


# How a checkpoint's run split the model over processes: reset to Megatron's defaults (one stage, no
# sequence/context/expert parallelism, no overlap) for the conversion's own world (TP ``tp`` only).
# The weights reshard on load; a training layout kept here would be refused by Megatron or mismatch
# this world (``sequence_parallel`` at TP=1: "Cannot use sequence parallelism without tensor
# parallelism"; an expert-parallel size larger than the world; uneven pipeline stages).
TRAINING_LAYOUT_FIELDS = (
    "pipeline_model_parallel_size", "virtual_pipeline_model_parallel_size", "pipeline_model_parallel_comm_backend",
    "num_layers_in_first_pipeline_stage", "num_layers_in_last_pipeline_stage", "pipeline_model_parallel_layout",
    "account_for_embedding_in_pipeline_split", "account_for_loss_in_pipeline_split",
    "microbatch_group_size_per_vp_stage", "sequence_parallel", "context_parallel_size",
    "hierarchical_context_parallel_sizes", "hybrid_context_parallel", "expert_model_parallel_size",
    "expert_tensor_parallel_size", "moe_extended_tp", "tp_comm_overlap", "overlap_moe_expert_parallel_comm",
    "overlap_p2p_comm", "batch_p2p_comm", "defer_embedding_wgrad_compute", "delay_wgrad_compute",
    "cpu_offloading",
)


def single_world_layout(provider, tp: int):
    """A copy of ``provider`` laid out for one process per TP rank (TP ``tp``, nothing else split)."""
    import dataclasses

    from megatron.core.transformer import TransformerConfig

    p = copy.deepcopy(provider)
    defaults = {f.name: f for f in dataclasses.fields(TransformerConfig)}
    for name in TRAINING_LAYOUT_FIELDS:
        if name in defaults and hasattr(p, name):
            f = defaults[name]
            setattr(p, name, f.default_factory() if f.default is dataclasses.MISSING else f.default)
    p.tensor_model_parallel_size = tp
    return p


def build_model(provider, tp: int):
    """A bare GPTModel for ``provider`` on this rank (TP ``tp``, one pipeline stage; whatever
    layout the checkpoint was trained with: ``single_world_layout``)."""
    p = single_world_layout(provider, tp)
    # Megatron's random init is wasted work here (every parameter is overwritten), but it must run:
    # with use_cpu_initialization, perform_initialization=False also skips setting the tensor-
    # parallel attributes (partition dim) that fill() shards by - a TP=2 import then fails.
    p.use_cpu_initialization = True
    p.finalize()
    return p, p.provide()


def build_meta_model(provider, tp: int):
    """``build_model`` on the ``meta`` device: every shape, tensor-parallel attribute and sharded
    state dict entry of the real model, no storage and no random init (``streaming``)."""
    p = single_world_layout(provider, tp)
    p.use_cpu_initialization = True  # sets the tensor-parallel attributes; init on meta costs nothing
    p.finalize()
    with torch.device("meta"):
        model = p.provide()
    _to_meta(model)
    return p, model


def _to_meta(model) -> None:
    """Megatron allocates some tensors on an explicit device, which the meta context does not override
    (the router's expert bias, the attention's learnable softmax offset): a real tensor would be saved
    with its initial values, not the source's. Each becomes a meta tensor, its attributes (the
    tensor-parallel ones) kept, so its data comes from the source and an export reads it like the rest."""
    for name, t in list(named_weights(model)):
        if t.is_meta:
            continue
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner)
        meta = torch.empty_like(t, device="meta")
        if isinstance(t, torch.nn.Parameter):
            meta = torch.nn.Parameter(meta, requires_grad=t.requires_grad)
            meta.__dict__.update(t.__dict__)
            module._parameters[attr] = meta
        else:
            module._buffers[attr] = meta


# Transformer Engine's spec fuses the pre-attention/pre-MLP norms into the next linear layer.
_TE_NORMS = {
    "self_attention.linear_qkv.layer_norm_weight": "input_layernorm.weight",
    "self_attention.linear_qkv.layer_norm_bias": "input_layernorm.bias",
    "mlp.linear_fc1.layer_norm_weight": "pre_mlp_layernorm.weight",
    "mlp.linear_fc1.layer_norm_bias": "pre_mlp_layernorm.bias",
}


def canonical_name(name: str, provider) -> str:
    """A model parameter's name in the whole-model (local spec, global expert index) namespace."""
    for te, local in _TE_NORMS.items():
        if name.endswith(te):
            return name[: -len(te)] + local
    if ".local_experts." in name:
        from megatron.core import parallel_state as ps

        head, rest = name.split(".local_experts.", 1)
        idx, tail = rest.split(".", 1)
        per_rank = provider.num_moe_experts // ps.get_expert_model_parallel_world_size()
        return f"{head}.local_experts.{ps.get_expert_model_parallel_rank() * per_rank + int(idx)}.{tail}"
    return name


def _pad_vocab(t: torch.Tensor, rows: int) -> torch.Tensor:
    # Padding rows are zero: their logits are 0 and no real token id reaches them.
    if t.shape[0] == rows:
        return t
    return torch.cat([t, t.new_zeros(rows - t.shape[0], *t.shape[1:])], 0)


_VOCAB = ("embedding.word_embeddings.weight", "output_layer.weight")


# Persistent buffers that are part of the model's function and of Hugging Face's weights: the sigmoid
# router's per-expert score correction (``moe_router_enable_expert_bias``; HF's e_score_correction_bias).
_WEIGHT_BUFFERS = (".router.expert_bias",)


def named_weights(model):
    """``(name, tensor)`` of every parameter and weight buffer of ``model`` (the router's expert bias picks
    experts, is never trained by gradients, and is updated from the token counts during training)."""
    yield from model.named_parameters()
    yield from ((n, b) for n, b in model.named_buffers() if n.endswith(_WEIGHT_BUFFERS))


def local_shard(key: str, full: torch.Tensor, param, provider) -> torch.Tensor:
    """This rank's part of the whole tensor ``full`` for Megatron parameter ``param`` (canonical
    name ``key``): in its dtype, vocabulary padded, sliced for tensor parallelism, contiguous."""
    from megatron.core import parallel_state as ps

    full = full.to(param.dtype)
    if key in _VOCAB:
        full = _pad_vocab(full, provider.padded_vocab_size(provider.vocab_size))
    if getattr(param, "tensor_model_parallel", False):
        expert = not getattr(param, "allreduce", True)
        n = ps.get_expert_tensor_parallel_world_size() if expert else ps.get_tensor_model_parallel_world_size()
        r = ps.get_expert_tensor_parallel_rank() if expert else ps.get_tensor_model_parallel_rank()
        dim = getattr(param, "partition_dim", 0)  # Mamba's per-head dt_bias/A_log/D carry none
        if provider.gated_linear_unit and key.endswith(("linear_fc1.weight", "linear_fc1.bias")):
            # each rank holds [gate_r; up_r], not rows r of [gate; up]
            shard = torch.cat([half.chunk(n, dim)[r] for half in full.chunk(2, 0)], 0)
        else:
            shard = full.chunk(n, dim)[r]
    else:
        shard = full
    if tuple(shard.shape) != tuple(param.shape):
        raise ConversionError(f"Megatron parameter '{key}': got shape {tuple(shard.shape)} for this rank, "
                              f"expected {tuple(param.shape)}")
    return shard.contiguous()


def check_sources(model, provider, keys) -> None:
    """Every model parameter (and weight buffer) has a source tensor and every source tensor one of them."""
    names = {canonical_name(name, provider) for name, _ in named_weights(model)}
    for key in sorted(names - set(keys)):
        raise ConversionError(f"no source tensor for Megatron parameter '{key}'")
    left = set(keys) - names
    if left:
        raise ConversionError(f"tensor(s) with no Megatron parameter: {', '.join(sorted(left))}")


def fill(model, provider, tensors: Dict[str, torch.Tensor]) -> None:
    """Copy each whole tensor's shard for this rank into ``model``; every tensor must be used."""
    check_sources(model, provider, tensors)
    for name, param in named_weights(model):
        key = canonical_name(name, provider)
        with torch.no_grad():
            param.copy_(local_shard(key, tensors[key], param, provider))


def unpadded(key: str, t: torch.Tensor, provider) -> torch.Tensor:
    """A whole tensor without the vocabulary padding rows ``local_shard`` added."""
    return t[: provider.vocab_size] if key in _VOCAB else t


def gather(model, provider) -> Dict[str, torch.Tensor]:
    """Whole tensors of a TP=1 model, vocabulary padding removed."""
    out = {}
    for name, param in named_weights(model):
        key = canonical_name(name, provider)
        out[key] = unpadded(key, param.detach(), provider).clone()
    return out


def check_import_dir(out: Path, overwrite: bool) -> None:
    """An import writes into a new or empty directory. With ``overwrite`` a non-empty one is
    accepted if its only checkpoint is a previous import (``iter_0000000`` holding hf_config.json),
    which is replaced; a directory with training checkpoints is refused even then (they would
    keep winning on load, and are not the converter's to delete)."""
    from plugtron.checkpointing import layout

    if out.exists() and not out.is_dir():
        raise ConversionError(f"{out}: is a file; expected a directory for the checkpoint")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ConversionError(f"{out}: not empty; choose a new directory, or pass --overwrite (Python: "
                              "overwrite=True) to replace a previous import there")
    try:
        layout.read_tracker(str(out))
    except CheckpointError as exc:
        raise ConversionError(f"{out}: {exc}; not a previous import, refusing to write there") from None
    imported = Path(layout.iter_path(str(out), 0)) / HF_CONFIG
    trained = [it for it in layout.complete_iterations(str(out)) if it != 0 or not imported.is_file()]
    if trained:
        raise ConversionError(f"{out}: holds training checkpoints ({layout.iter_name(trained[-1])}); import-hf never "
                              "replaces those, even with --overwrite: choose a new directory")


def save(model, provider, out: Path, hf_config: dict = None, overwrite: bool = False, tokenizer=None,
         source=None) -> Path:
    """Write the layout above (collective: every rank calls it) through the publish sequence of
    training saves (``plugtron.checkpointing.publish``): staged, manifest, atomic rename, tracker -
    so ``pretrained_checkpoint`` verifies a converted checkpoint like a saved one.
    With ``overwrite`` a previous import's ``iter_0000000`` is replaced (atomically, by the publish).
    ``tokenizer`` (a ``TokenizerConfig``) is recorded in run_config.yaml for ``plugtron generate``.
    ``source`` (a ``streaming.ParameterSource``): ``model`` is on the meta device and each
    parameter's data is produced from it while it is written (``streaming``)."""
    import json

    from megatron.core import dist_checkpointing

    from plugtron.config import ConfigContainer

    final = Path(layout.iter_path(str(out), 0))
    if final.exists() and any(final.iterdir()) and not overwrite:  # every rank checks: no rank is left in a barrier
        raise ConversionError(f"{final}: already exists and is not empty; choose a new output directory")
    staging = Path(publish.open_staging(str(out), 0))  # also removes a killed conversion's staging
    if source is not None:
        from plugtron.providers.hf import streaming

        streaming.save(model, source, staging)
    else:
        from plugtron.checkpointing import write_queue

        write_queue.start()  # before Megatron spawns its helper: a script needs no __main__ guard
        dist_checkpointing.save({"model": model.sharded_state_dict()}, str(staging))
    if distributed.is_rank0():
        extra = {"tokenizer": tokenizer} if tokenizer is not None else {}
        publish.write_run_config(str(staging), ConfigContainer(model=provider, **extra))
        if hf_config is not None:
            (staging / HF_CONFIG).write_text(json.dumps(hf_config, indent=2) + "\n", encoding="utf-8")
    return Path(publish.publish(str(out), 0))


def checkpoint_dir(root: Path, key: str = "export-hf") -> Path:
    """The checkpoint directory of ``root`` (a save root with a tracker, or an ``iter_*`` dir),
    verified against its manifest when it has one. ``key`` names the command in errors."""
    path = Path(layout.resolve_checkpoint_dir(str(root), key))
    if not (path / layout.RUN_CONFIG).is_file():
        raise CheckpointError(f"{path}: no {layout.RUN_CONFIG} (the model's provider is needed to rebuild it)")
    from plugtron.checkpointing import safe_pickle

    if (path / layout.MANIFEST).is_file():  # a converted or trained checkpoint; another tool's may lack one
        layout.verify(str(path))
    if (path / ".metadata").is_file():  # before Megatron reads it: refuses anything but dcp metadata classes
        safe_pickle.load_metadata(str(path / ".metadata"))
    return path


def provider_of(path: Path):
    from plugtron.config import from_yaml

    config = path / layout.RUN_CONFIG
    return from_yaml(config.read_text(encoding="utf-8"), source=str(config)).model


def load_provider(root: Path):
    from plugtron.migrate import nemo2_checkpoint as nemo2

    if nemo2.is_nemo2_checkpoint(str(root)):  # weights/ + context/: the model config is context/model.yaml
        return nemo2.provider_from_checkpoint(str(root))
    return provider_of(checkpoint_dir(root))


def load_model(root: Path, tp: int = 1, key: str = "export-hf") -> Tuple[object, object]:
    """(provider, bare GPTModel) with the checkpoint's model weights; inside ``megatron_world(tp)``.
    Only the model's keys are read, so optimizer/RNG entries in a training checkpoint are ignored."""
    from plugtron.migrate import nemo2_checkpoint as nemo2

    if nemo2.is_nemo2_checkpoint(str(root)):
        provider, model = build_model(load_provider(root), tp)
        nemo2.load_bare_model(model, str(root))
        return provider, model
    path = checkpoint_dir(root, key)  # verified once, here
    return load_verified(path, provider_of(path), tp)


def load_verified(path: Path, provider, tp: int = 1) -> Tuple[object, object]:
    """(finalized provider, bare GPTModel) with the model weights of ``path``, a checkpoint
    directory that ``checkpoint_dir`` has verified; inside ``megatron_world(tp)``."""
    from megatron.core import dist_checkpointing

    from plugtron.checkpointing.safe_pickle import safe_loads

    provider, model = build_model(provider, tp)
    try:
        with safe_loads():  # a checkpoint from elsewhere cannot run code while it is read
            loaded = dist_checkpointing.load({"model": model.sharded_state_dict()}, str(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # torch's CheckpointException is a BaseException
        from plugtron.checkpointing.load_errors import describe

        raise CheckpointError(f"{path}: cannot load the model weights: {describe(exc)}") from exc
    missing, unexpected = model.load_state_dict(loaded["model"], strict=False)
    missing = [k for k in missing if not k.endswith("_extra_state")]
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return provider, model
