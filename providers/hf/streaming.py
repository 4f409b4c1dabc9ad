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

Reading for export is the reverse (``CheckpointReader``, ``load_parameters``): for one parameter at
a time, the boxes of the global tensors its ShardedTensors describe are read from the saved chunks
that cover them. ``plugtron peft merge`` does both: each base weight read, its adapter folded in,
written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import torch

from plugtron.errors import CheckpointError
from plugtron.providers.hf.errors import ConversionError


def _storage_id(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


class ParameterSource:
    """Real data for the meta model's parameters: ``shard_of(name)`` returns this rank's shard of
    parameter ``name``; the last one is kept, so the two halves of a SwiGLU ``linear_fc1`` (two
    write items of one parameter) are produced once when written one after the other.
    ``named``: ``(name, meta tensor)`` of the parameters and of the weight buffers (the router's
    expert bias) - every meta tensor of the model that its checkpoint holds."""

    def __init__(self, named, shard_of: Callable[[str, torch.Tensor], torch.Tensor]):
        self._params = {_storage_id(p): (name, p) for name, p in named}
        self._shard_of = shard_of
        self._last: Tuple[str, torch.Tensor] = ("", None)

    def real(self, meta: torch.Tensor) -> torch.Tensor:
        entry = self._params.get(_storage_id(meta))
        if entry is None:
            raise ConversionError(f"no parameter behind a checkpoint tensor of shape {tuple(meta.shape)}")
        name, param = entry
        if self._last[0] != name:
            if self._last[1] is not None:
                # Free the previous shard's memory now: torch's writer keeps a reference to the last
                # tensor written under each key until the file is closed (for its safetensors format
                # only; the torch_dist checkpoint is TORCH_SAVE), which would hold one parameter per
                # key - the output layer while the embedding is produced. Its bytes are on disk.
                # (A tensor safetensors returned as is has a fixed-size storage: it stays.)
                storage = self._last[1].untyped_storage()
                if storage.resizable():
                    storage.resize_(0)
            self._last = ("", None)
            shard = self._shard_of(name, param)
            if shard.dtype != param.dtype or tuple(shard.shape) != tuple(param.shape) or not shard.is_contiguous():
                raise ConversionError(f"Megatron parameter '{name}': produced {tuple(shard.shape)} {shard.dtype}, "
                                      f"expected {tuple(param.shape)} {param.dtype}")
            self._last = (name, shard)
        shard = self._last[1]  # may itself be a slice of a bigger tensor (a TP row block): offsets add up
        return shard.as_strided(meta.shape, meta.stride(), shard.storage_offset() + meta.storage_offset())


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

    from plugtron.errors import PlugtronError

    try:
        dist_checkpointing.save({"model": model.sharded_state_dict()}, str(checkpoint_dir),
                                sharded_strategy=_strategy(source))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # torch's CheckpointException wraps what a write raised: show ours plainly
        for failure in (getattr(exc, "failures", None) or {}).values():
            cause = failure[0] if isinstance(failure, tuple) else failure
            if isinstance(cause, PlugtronError):
                raise cause from None
        raise


def _boxes(model) -> Dict[int, List]:
    """Parameter storage -> the ShardedTensors (factories applied) whose data are views of it."""
    from megatron.core.dist_checkpointing.dict_utils import nested_values
    from megatron.core.dist_checkpointing.mapping import ShardedTensor, apply_factories

    sd = model.sharded_state_dict()
    apply_factories(sd)
    out: Dict[int, List] = {}
    for st in nested_values(sd):
        if isinstance(st, ShardedTensor) and isinstance(st.data, torch.Tensor) and st.data.is_meta:
            out.setdefault(_storage_id(st.data), []).append(st)
    return out


_VOCAB_KEYS = ("embedding.word_embeddings.weight", "output_layer.weight")


class CheckpointReader:
    """Reads parameters of the meta ``model`` (TP=1, so each is whole) from the checkpoint at ``path``
    (any TP/EP layout: boxes of the global tensors are read from whichever saved chunks cover them),
    one at a time (``read``): only that parameter is in memory. The index is read once, through the
    restricted unpickler.

    Megatron's own ``load`` insists on every layer of a layer-stacked tensor at once (its
    conversion to torch's ShardedTensor wants them all), so the read goes through torch's
    ``dcp.load`` with a planner asking for one box per ShardedTensor of the parameter."""

    def __init__(self, model, path: Path):
        from torch.distributed.checkpoint import FileSystemReader

        from plugtron.checkpointing.safe_pickle import safe_loads

        self.path = path
        with safe_loads():  # the index through the restricted unpickler; tensors weights-only
            self.metadata = FileSystemReader(str(path)).read_metadata()
        self.boxes = _boxes(model)

    def read(self, name: str, meta: torch.Tensor) -> torch.Tensor:
        """Parameter (or weight buffer) ``name`` of the model, ``meta`` its meta tensor: a new tensor."""
        from torch.distributed.checkpoint import load as dcp_load
        from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
        from torch.distributed.checkpoint.metadata import ChunkStorageMetadata, TensorStorageMetadata
        from torch.distributed.checkpoint.planner import LoadPlan
        from torch.distributed.checkpoint.planner_helpers import create_read_items_for_chunk_list

        from plugtron.checkpointing.fast_reader import FastReader
        from plugtron.checkpointing.load_errors import describe
        from plugtron.checkpointing.safe_pickle import safe_loads

        path, metadata = self.path, self.metadata

        class Reader(FastReader):  # saved tensors memory-mapped, one copy into the parameter
            def read_metadata(self):  # read once, not once per parameter
                return metadata

        class BoxPlanner(DefaultLoadPlanner):
            def __init__(self, boxes):
                super().__init__(flatten_state_dict=False)
                self.boxes = boxes  # (key, offsets, real view of the parameter)

            def create_local_plan(self):
                items, self.dest = [], {}
                for key, offsets, view in self.boxes:
                    md = metadata.state_dict_metadata.get(key)
                    if not isinstance(md, TensorStorageMetadata):
                        raise CheckpointError(f"{path}: no tensor '{key}' in the checkpoint")
                    self.dest[(key, tuple(offsets))] = view
                    chunk = ChunkStorageMetadata(offsets=torch.Size(offsets), sizes=view.shape)
                    items += create_read_items_for_chunk_list(key, md, [chunk])
                return LoadPlan(items)

            def resolve_tensor(self, read_item):
                view = self.dest[(read_item.dest_index.fqn, tuple(read_item.dest_index.offset))]
                return self.transform_tensor(read_item, view)  # the part of the box this saved chunk fills

        sts = self.boxes.get(_storage_id(meta), [])
        if not sts or any(st.flattened_range is not None for st in sts):
            raise CheckpointError(f"{path}: cannot read '{name}' tensor by tensor (no plain sharded tensor for it)")
        for st in sts:  # a box outside the saved tensor would read nothing and leave the memory as it was
            md = metadata.state_dict_metadata.get(st.key)
            if not isinstance(md, TensorStorageMetadata):
                continue  # a missing key: the planner's own error, naming it
            # vocabulary rows: padded differently on disk when saved at another TP; only the real rows
            # (all saved at any padding) are exported, so the row counts may differ
            same = (md.size[1:] == st.global_shape[1:] if st.key in _VOCAB_KEYS
                    else tuple(md.size) == tuple(st.global_shape))
            if not same:
                raise CheckpointError(f"{path}: '{st.key}' is saved with shape {tuple(md.size)}, but the model its "
                                      f"run_config.yaml describes has {tuple(st.global_shape)} (a config that does not "
                                      "match its weights)")
        real = torch.empty(meta.shape, dtype=meta.dtype)
        plan = [(st.key, st.global_offset,
                 real.as_strided(st.data.shape, st.data.stride(), st.data.storage_offset())
                 .view((1,) * st.prepend_axis_num + tuple(st.local_shape)))
                for st in sts]
        try:
            with safe_loads():
                dcp_load({}, storage_reader=Reader(str(path)), planner=BoxPlanner(plan))
        except CheckpointError:
            raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # torch's CheckpointException is a BaseException
            raise CheckpointError(f"{path}: cannot load '{name}': {describe(exc)}") from exc
        return real


def load_parameters(model, path: Path, named) -> Iterator[Tuple[str, torch.Tensor]]:
    """(name, tensor) of each of ``named`` (``(name, meta tensor)`` of parameters or weight buffers
    of the meta ``model``) read from the checkpoint at ``path`` one at a time (``CheckpointReader``)."""
    reader = CheckpointReader(model, path)
    for name, meta in named:
        yield name, reader.read(name, meta)
