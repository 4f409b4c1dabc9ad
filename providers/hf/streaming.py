"""Tensor-by-tensor conversion: a Megatron checkpoint written (or read) without the model's weights
ever being in memory together.

The model is built on PyTorch's ``meta`` device (shapes, tensor-parallel attributes and Megatron's
own ``sharded_state_dict`` - keys, global shapes, offsets, replicas, the SwiGLU factories - but no
storage and no random init). Saving goes through Megatron's ``dist_checkpointing.save`` with the
``torch_dist`` strategy below: Megatron applies the factories and drops non-main replicas as for a
real model, then torch's own ``FileSystemWriter`` (one thread, no helper process) asks the planner
for each write item's data one at a time - only then is that parameter's shard produced (read from
the safetensors, fused, padded, sliced for this rank), written and released. A write item's meta
tensor is a view of its parameter's meta storage, so the real data is the same view
(``as_strided``) of the produced shard; this covers Megatron's reshapes and factory splits without
knowing them. Peak memory: one parameter's inputs plus its fused shard, independent of model size.

Loading for export is the reverse: Megatron's ``dist_checkpointing.load`` of one parameter at a
time (a sub-dict of the meta model's ``sharded_state_dict`` with real, empty tensors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Tuple

import torch

from plugtron.errors import CheckpointError
from plugtron.providers.hf.errors import ConversionError


def _storage_id(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


class ParameterSource:
    """Real data for the meta model's parameters: ``shard_of(name)`` returns this rank's shard of
    parameter ``name``; the last one is kept, so the two halves of a SwiGLU ``linear_fc1`` (two
    write items of one parameter) are produced once when written one after the other."""

    def __init__(self, model, shard_of: Callable[[str, torch.Tensor], torch.Tensor]):
        self._params = {_storage_id(p): (name, p) for name, p in model.named_parameters()}
        self._shard_of = shard_of
        self._last: Tuple[str, torch.Tensor] = ("", None)

    def real(self, meta: torch.Tensor) -> torch.Tensor:
        entry = self._params.get(_storage_id(meta))
        if entry is None:
            raise ConversionError(f"no parameter behind a checkpoint tensor of shape {tuple(meta.shape)}")
        name, param = entry
        if self._last[0] != name:
            self._last = ("", None)  # release the previous shard before producing the next one
            shard = self._shard_of(name, param)
            if shard.dtype != param.dtype or tuple(shard.shape) != tuple(param.shape) or not shard.is_contiguous():
                raise ConversionError(f"Megatron parameter '{name}': produced {tuple(shard.shape)} {shard.dtype}, "
                                      f"expected {tuple(param.shape)} {param.dtype}")
            self._last = (name, shard)
        return self._last[1].as_strided(meta.shape, meta.stride(), meta.storage_offset())


def _strategy(source: ParameterSource):
    """Megatron's torch_dist save strategy, writing through torch's serial ``FileSystemWriter``
    with a planner that produces each meta tensor's data when it is written."""
    from megatron.core.dist_checkpointing.strategies.torch import (
        MCoreSavePlanner,
        TorchDistSaveShardedStrategy,
        _replace_state_dict_keys_with_sharded_keys,
        mcore_to_pyt_state_dict,
    )
    from torch.distributed.checkpoint import FileSystemWriter
    from torch.distributed.checkpoint import save as dcp_save

    class LazyPlanner(MCoreSavePlanner):
        def resolve_data(self, write_item):
            data = super().resolve_data(write_item)
            if isinstance(data, torch.Tensor) and data.is_meta:
                return source.real(data)
            return data

    class Writer(FileSystemWriter):
        def storage_meta(self):
            # as Megatron's writer: none (torch's would record the staging path, wrong once published,
            # and a pathlib object the metadata's restricted unpickling refuses)
            return None

    class StreamingSave(TorchDistSaveShardedStrategy):
        def save(self, sharded_state_dict, checkpoint_dir: Path) -> None:
            flat, _, _ = _replace_state_dict_keys_with_sharded_keys(sharded_state_dict, self.keep_only_main_replica)
            writer = Writer(str(checkpoint_dir), single_file_per_rank=True, sync_files=True, thread_count=1)
            # dedup off: replicas were already dropped above (Megatron's replica_id rule, as its own save)
            planner = LazyPlanner(dedup_replicated_tensors=False, flatten_state_dict=False)
            dcp_save(mcore_to_pyt_state_dict(flat, False), storage_writer=writer, planner=planner)

    return StreamingSave("torch_dist", 1, thread_count=1)


def save(model, source: ParameterSource, checkpoint_dir: Path) -> None:
    """Collective: write ``model``'s sharded state dict (meta) with data from ``source``."""
    from megatron.core import dist_checkpointing

    dist_checkpointing.save({"model": model.sharded_state_dict()}, str(checkpoint_dir),
                            sharded_strategy=_strategy(source))


def load_parameters(model, path: Path, names) -> Iterator[Tuple[str, torch.Tensor]]:
    """(name, tensor) of each of ``names`` (parameters of the meta ``model``) read from the checkpoint
    at ``path``, one at a time: only that parameter is ever in memory."""
    from megatron.core import dist_checkpointing

    from plugtron.checkpointing.load_errors import describe
    from plugtron.checkpointing.safe_pickle import safe_loads

    full = model.sharded_state_dict()
    by_param = {}
    for key, value in full.items():
        data = getattr(value, "data", None)
        if isinstance(data, torch.Tensor):
            by_param[key] = value
    params = dict(model.named_parameters())
    for name in names:
        if name not in by_param:
            raise CheckpointError(f"{path}: the model has no checkpoint entry for '{name}'")
        entry = by_param[name]
        entry.data = torch.empty(params[name].shape, dtype=params[name].dtype)
        try:
            with safe_loads():  # a checkpoint from elsewhere cannot run code while it is read
                loaded = dist_checkpointing.load({"model": {name: entry}}, str(path))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # torch's CheckpointException is a BaseException
            raise CheckpointError(f"{path}: cannot load '{name}': {describe(exc)}") from exc
        finally:
            entry.data = params[name]
        yield name, loaded["model"][name]

