"""An adapter checkpoint back into a model: rebuild the base with the run's adapters and load them
(``adapted_model``), fold them into the base weights (``fold``), and write a normal plugtron
checkpoint tensor by tensor (``merge``: what ``plugtron peft merge`` runs; the base is never whole in
memory). One process, tensor parallel size 1; the checkpoints reshard on load, so adapters trained at
any TP/PP, over a base saved at any TP/PP/EP, merge the same way."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Iterator, Tuple

import torch

from plugtron.checkpointing import contents, layout
from plugtron.errors import CheckpointError
from plugtron.providers.peft.adapters import adapted_layers, unadapt

log = logging.getLogger("plugtron")


def read_adapter_checkpoint(root: str) -> Tuple[Path, object]:
    """(verified checkpoint directory, its run config) of an adapter checkpoint; clear errors for
    anything else (a full checkpoint, a missing base)."""
    from plugtron.config import from_yaml
    from plugtron.providers.hf import megatron_side

    path = megatron_side.checkpoint_dir(Path(root), "peft")  # resolves, verifies the manifest, restricted .metadata
    ts_path = path / layout.TRAIN_STATE  # an import has none: no run saved it
    ts = contents.load_weights_only(str(ts_path)) if ts_path.is_file() else {}
    if not ts.get("adapter_only"):
        raise CheckpointError(f"{path}: not an adapter checkpoint (no peft run saved it); a full checkpoint needs no merge")
    cfg = from_yaml((path / layout.RUN_CONFIG).read_text(encoding="utf-8"), source=str(path / layout.RUN_CONFIG))
    base = cfg.checkpoint.pretrained_checkpoint
    if base and not os.path.exists(base) and ts.get("base_checkpoint") and os.path.exists(ts["base_checkpoint"]):
        base = cfg.checkpoint.pretrained_checkpoint = ts["base_checkpoint"]  # recorded relative to another directory
    if not base or not os.path.exists(base):
        raise CheckpointError(f"{path}: its base checkpoint {base!r} (checkpoint.pretrained_checkpoint in its "
                              f"run_config.yaml) is not there; the adapters need it")
    return path, cfg


@contextlib.contextmanager
def adapted_model(root: str) -> Iterator[Tuple[object, object, torch.nn.Module, Path]]:
    """``(run config, provider, model, checkpoint dir)``: the base model with the checkpoint's
    adapters loaded, inside a one-process Megatron world (torn down on exit)."""
    from plugtron.providers.hf import megatron_side
    from plugtron.providers.peft.transform import apply_peft

    path, cfg = read_adapter_checkpoint(root)
    with megatron_side.megatron_world(1):
        provider, model = megatron_side.load_model(Path(cfg.checkpoint.pretrained_checkpoint), tp=1)
        apply_peft(cfg.peft, provider, [model])
        load_adapters(model, path)
        model.eval()
        yield cfg, provider, model, path


def load_adapters(model, path: Path) -> None:
    """The adapter checkpoint's tensors into ``model``'s adapters (``apply_peft`` attached them);
    the base parameters are left as they are (loaded, or on the meta device)."""
    from megatron.core import dist_checkpointing

    from plugtron.checkpointing.safe_pickle import safe_loads

    keep = contents.trainable_names(model)
    sd = {k: v for k, v in model.sharded_state_dict(metadata=dict(contents.SHARDED_METADATA)).items() if k in keep}
    try:
        with safe_loads():
            loaded = dist_checkpointing.load({"model": sd}, str(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # torch's CheckpointException is a BaseException
        from plugtron.checkpointing.load_errors import describe

        raise CheckpointError(f"{path}: cannot load the adapters: {describe(exc)}") from exc
    contents.restore_model([model], loaded, trainable_only=True)


def recorded_tokenizer(cfg, ckpt_dir: Path):
    """The tokenizer an adapter run recorded, with its paths made absolute (``tokenizer_files``)."""
    from plugtron.checkpointing import tokenizer_files

    return tokenizer_files.resolve(cfg.tokenizer, str(ckpt_dir))


def merge_into(adapter, weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (this rank's shard of the adapted layer's base weight, a tensor the caller owns)
    turned in place into the weight that computes what the adapted layer computes. In place, so a
    merge holds the weight and one weight-sized delta at a time (the streamed merge's memory bound);
    the same float operations, in the same order, as ``W + sBA`` computed out of place."""
    with torch.no_grad():
        rescale = None
        if adapter.magnitude is not None:  # DoRA: m / |W + sBA| per output row, the norm of the base W
            rescale = (adapter.magnitude / adapter.weight_norm(weight)).unsqueeze(1)
        weight.add_(adapter.delta_weight().to(weight.dtype))
        if rescale is not None:
            weight.mul_(rescale)
    return weight


def merged_weight(layer) -> torch.Tensor:
    """The weight that computes what the adapted layer computes (this rank's shard)."""
    return merge_into(layer.peft_adapter, layer.weight.detach().clone())


def fold(model) -> int:
    """Merge every adapter into its layer's weight and remove it; returns how many."""
    layers = adapted_layers(model)
    for _, layer in layers:
        w = merged_weight(layer)
        with torch.no_grad():
            layer.weight.copy_(w)
        unadapt(layer)
    for p in model.parameters():
        p.requires_grad_(True)
    return len(layers)


def check_new_dir(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"{out}: exists and is not an empty directory; choose a new output directory")


def merge(adapter_ckpt: str, out_dir: str) -> Path:
    """Write ``out_dir`` (a plugtron checkpoint like an import: ``iter_0000000``) with the adapters
    of ``adapter_ckpt`` folded into its base; ``plugtron convert export-hf`` reads it.

    Streamed, as ``convert import-hf``/``export-hf`` (``plugtron.providers.hf.streaming``): the model
    is built on the meta device with the run's adapters (real: they are small) and its checkpoint
    loaded into them; then each base weight is read from the base checkpoint (any TP/PP/EP layout)
    while the output is written, the adapter's delta folded in (``merge_into``), written and released.
    Peak memory: about twice the largest weight plus a fixed overhead, whatever the model's size."""
    from plugtron.providers.hf import megatron_side, streaming
    from plugtron.providers.peft.transform import apply_peft

    out = Path(out_dir)
    check_new_dir(out)
    path, cfg = read_adapter_checkpoint(adapter_ckpt)
    base_dir = megatron_side.checkpoint_dir(Path(cfg.checkpoint.pretrained_checkpoint),  # verified once, here
                                            "checkpoint.pretrained_checkpoint")
    hf_config = None
    if (base_dir / megatron_side.HF_CONFIG).is_file():  # an imported base: export-hf keeps its config.json
        hf_config = json.loads((base_dir / megatron_side.HF_CONFIG).read_text(encoding="utf-8"))
    with megatron_side.megatron_world(1):
        provider, model = megatron_side.build_meta_model(megatron_side.provider_of(base_dir), 1)
        apply_peft(cfg.peft, provider, [model])
        load_adapters(model, path)
        adapters = {}  # base weight name -> its adapter; the layers become plain again (the output's keys)
        for name, layer in adapted_layers(model):
            adapters[f"{name}.weight"] = layer.peft_adapter
            unadapt(layer)
        reader = streaming.CheckpointReader(model, base_dir)

        def merged(name, param):
            weight = reader.read(name, param)
            return merge_into(adapters[name], weight) if name in adapters else weight

        megatron_side.save(model, provider, out, hf_config=hf_config, tokenizer=recorded_tokenizer(cfg, path),
                           source=streaming.ParameterSource(megatron_side.named_weights(model), merged))
    log.info(f"peft merge: folded {len(adapters)} adapters of {path} into {base_dir}; wrote {out}")
    return out
