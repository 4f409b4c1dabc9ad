"""Reading torch_dist checkpoint files with one copy per byte instead of three.

torch's ``FileSystemReader.read_data`` reads each saved tensor's bytes into a buffer (copy 1),
``torch.load`` copies them into a fresh storage (copy 2), and the planner copies that into the
destination tensor (copy 3). Here each saved item is memory-mapped (private, copy-on-write:
nothing is ever written back) and torch's own weights-only loader builds the tensor as a view of
the mapping - the same route as ``torch.load(mmap=True)``, which needs a whole file where a
checkpoint item is a slice of one - so the only copy is page cache -> destination. Measured with
``benchmarks/checkpoint_io.py``: see the README.

Everything else is torch's: the plan, the planner's ``resolve_tensor``/``commit_tensor``,
``narrow_tensor_by_index``, the restricted ``.metadata`` read (``safe_pickle.safe_loads``) and the
weights-only unpickler for every item. Items written with stream transforms (torch's experimental
extensions; Megatron writes none) go through torch's reader unchanged.

``patched()`` makes Megatron's torch_dist load strategy use this reader; ``FastReader`` is also
the base of the streamed export's one-parameter-at-a-time reader.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
from typing import Dict, List

import torch
from torch.distributed.checkpoint.filesystem import FileSystemReader, _create_file_view
from torch.distributed.checkpoint.planner import LoadItemType
from torch.distributed._shard._utils import narrow_tensor_by_index

from plugtron.errors import CheckpointError

_GRANULE = mmap.ALLOCATIONGRANULARITY


def _name(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"file descriptor {fd}"


def _mapped_item(fd: int, offset: int, length: int) -> torch.UntypedStorage:
    """The bytes [offset, offset+length) of the open file ``fd`` as a storage over a private mapping
    (pages come from the page cache on first touch; unmapped when the last view is freed)."""
    start = offset - offset % _GRANULE
    size = os.fstat(fd).st_size
    if offset + length > size:  # mmap would refuse it with "mmap length is greater than file size"
        raise CheckpointError(f"{_name(fd)}: {size} bytes, but the checkpoint index places a saved tensor at bytes "
                              f"{offset}..{offset + length}; the file is truncated")
    m = mmap.mmap(fd, offset + length - start, access=mmap.ACCESS_COPY, offset=start)
    whole = torch.frombuffer(m, dtype=torch.uint8).untyped_storage()
    return whole[offset - start:]


# data.pkl bytes (+ byteorder record) -> (dtype, size, stride, storage offset, storage bytes) of the
# tensor it rebuilds. The same pickle always rebuilds the same tensor over its "data/0" record, so it
# is unpickled once per distinct shape (a model's layers repeat theirs): torch's weights-only
# unpickler is pure Python, ~0.3 ms an item, most of an item's cost.
_RECIPES: Dict[tuple, tuple] = {}
_RECIPES_MAX = 4096


def _remember(key: tuple, zf, storage: torch.UntypedStorage, tensor) -> None:
    if type(tensor) is not torch.Tensor or tensor.requires_grad or len(_RECIPES) >= _RECIPES_MAX:
        return
    own = tensor.untyped_storage()
    if not zf.has_record("data/0") or own.data_ptr() != storage.data_ptr() + zf.get_record_offset("data/0"):
        return  # not the one-storage layout torch.save writes for a tensor: unpickle it each time
    _RECIPES[key] = (tensor.dtype, tuple(tensor.shape), tensor.stride(), tensor.storage_offset(), own.nbytes())


def _load_item(stream, fd: int, offset: int, length: int) -> torch.Tensor:
    """One ``torch.save``d tensor stored at [offset, offset+length): the zip directory and the
    pickle are read through the file (small), the data is a view of the mapping."""
    storage = _mapped_item(fd, offset, length)
    with torch.serialization._open_zipfile_reader(_create_file_view(stream, offset, length)) as zf:
        key = (zf.get_record("data.pkl"), zf.get_record("byteorder") if zf.has_record("byteorder") else None)
        recipe = _RECIPES.get(key)
        if recipe is not None:
            dtype, size, stride, storage_offset, nbytes = recipe
            start = zf.get_record_offset("data/0")
            if start + nbytes <= length:
                return torch.empty(0, dtype=dtype).set_(storage[start:start + nbytes], storage_offset, size, stride)
        tensor = torch.serialization._load(zf, "cpu", torch._weights_only_unpickler, overall_storage=storage)
        _remember(key, zf, storage, tensor)
        return tensor


class FastReader(FileSystemReader):
    """``FileSystemReader`` whose tensors are read through memory maps (see the module doc)."""

    def read_data(self, plan, planner):
        if any(self.storage_data[item.storage_index].transform_descriptors for item in plan.items):
            return super().read_data(plan, planner)  # stream transforms need torch's byte stream
        per_file: Dict[str, List] = {}
        for item in plan.items:
            per_file.setdefault(self.storage_data[item.storage_index].relative_path, []).append(item)
        for relative_path, items in per_file.items():
            self._read_file(os.path.join(self.path, relative_path), items, planner)
        fut = torch.futures.Future()
        fut.set_result(None)
        return fut

    def _read_file(self, path: str, items: List, planner) -> None:
        # A thread parsing the next items while this one copies was measured no faster (quiet
        # machine, 2 cores: 0.124 s against 0.120 s a 304 MB load): the copy is bound by memory.
        with open(path, "rb") as stream:
            fd = stream.fileno()
            for item in sorted(items, key=lambda it: self.storage_data[it.storage_index].offset):
                md = self.storage_data[item.storage_index]
                if item.type == LoadItemType.BYTE_IO:
                    stream.seek(md.offset)
                    planner.load_bytes(item, io.BytesIO(stream.read(md.length)))
                    continue
                saved = narrow_tensor_by_index(_load_item(stream, fd, md.offset, md.length),
                                               item.storage_offsets, item.lengths)
                target = planner.resolve_tensor(item).detach()
                if target.size() != saved.size():
                    raise AssertionError(f"req {item.storage_index} mismatch sizes {target.size()} vs {saved.size()}")
                target.copy_(saved)  # the one copy: page cache -> destination
                planner.commit_tensor(item, target)
                del saved  # drops the mapping


def _cached_reader_class():
    from megatron.core.dist_checkpointing.strategies.cached_metadata_filesystem_reader import (
        CachedMetadataFileSystemReader,
    )

    class CachedFastReader(FastReader, CachedMetadataFileSystemReader):
        """What Megatron's load strategy asks for (``cache_metadata=True``): the index read once."""

    return CachedFastReader


@contextlib.contextmanager
def patched():
    """For the duration, Megatron's torch_dist loads read through ``FastReader`` (unless Megatron's
    multi-storage client is enabled: that reader is for object stores and stays)."""
    from megatron.core.dist_checkpointing.strategies import torch as mcore_torch

    previous, cached = mcore_torch._get_filesystem_reader, _cached_reader_class()

    def reader(checkpoint_dir, cache_metadata: bool = False):
        from megatron.core.msc_utils import MultiStorageClientFeature

        if MultiStorageClientFeature.is_enabled():
            return previous(checkpoint_dir, cache_metadata)
        return cached(checkpoint_dir) if cache_metadata else FastReader(checkpoint_dir)

    mcore_torch._get_filesystem_reader = reader
    try:
        yield
    finally:
        mcore_torch._get_filesystem_reader = previous
