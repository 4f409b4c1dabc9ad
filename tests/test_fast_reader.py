"""plugtron's memory-mapped checkpoint reader (``checkpointing.fast_reader``): it must read exactly
what torch's own ``FileSystemReader`` reads, keep torch's weights-only unpickling for every saved
item, and be the reader Megatron's loads use inside plugtron."""

from __future__ import annotations

import io
import os

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, TensorStorageMetadata

from plugtron.checkpointing import fast_reader
from plugtron.checkpointing.safe_pickle import safe_loads


def _saved_items(path, tensors, lead=b"x" * 13):
    """``tensors`` torch.save'd back to back after ``lead`` bytes (odd offsets, as in a .distcp)."""
    spans = []
    with open(path, "wb") as f:
        f.write(lead)
        for t in tensors:
            buf = io.BytesIO()
            torch.save(t, buf)
            spans.append((f.tell(), buf.tell()))
            f.write(buf.getvalue())
    return spans


def test_an_item_is_the_tensor_torch_load_reads(tmp_path):
    base = torch.randn(6, 10)
    tensors = [torch.randn(3, 5), torch.arange(7, dtype=torch.int64), base[2:, 3:7],  # a view of a bigger storage
               torch.randn(4, 4).to(torch.bfloat16), torch.randn(5, 3).t(), torch.zeros(0), torch.tensor(2.5)]
    path = tmp_path / "items.bin"
    spans = _saved_items(path, tensors)
    fast_reader._RECIPES.clear()
    with open(path, "rb") as f:
        for round in ("unpickled", "from the recipe of the same pickle"):
            for want, (offset, length) in zip(tensors, spans):
                got = fast_reader._load_item(f, f.fileno(), offset, length)
                assert (got.dtype, got.shape, got.stride()) == (want.dtype, want.shape, want.stride()), round
                assert torch.equal(got, want), round
    assert len(fast_reader._RECIPES) == len(tensors)


def test_same_shape_items_reuse_one_unpickling(tmp_path, monkeypatch):
    tensors = [torch.randn(3, 4) for _ in range(5)]
    spans = _saved_items(tmp_path / "same.bin", tensors)
    fast_reader._RECIPES.clear()
    unpickled = []
    real = torch.serialization._load
    monkeypatch.setattr(torch.serialization, "_load", lambda *a, **k: (unpickled.append(1), real(*a, **k))[1])
    with open(tmp_path / "same.bin", "rb") as f:
        got = [fast_reader._load_item(f, f.fileno(), o, n) for o, n in spans]
    assert len(unpickled) == 1
    assert all(torch.equal(g, w) for g, w in zip(got, tensors))
    assert len({g.data_ptr() for g in got}) == 5  # each its own bytes


def test_an_item_is_unpickled_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.bin"
    (offset, length), = _saved_items(path, [[Evil()]])
    with open(path, "rb") as f, pytest.raises(Exception, match="(?i)weights.only|unsupported global"):
        fast_reader._load_item(f, f.fileno(), offset, length)


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    """A real Megatron torch_dist checkpoint (model + Adam state), from a 2-step run."""
    from helpers import SMALL

    from plugtron.checkpointing import layout
    from plugtron.config import load_config
    from plugtron.training import train

    root = tmp_path_factory.mktemp("fastreader") / "ckpt"
    train(load_config(None, SMALL + ["train.eval_interval=null", "train.train_iters=2", f"checkpoint.save={root}"]))
    return str(layout.iter_path(str(root), 2))


def _empty_state_dict(ckpt_dir):
    with safe_loads():
        md = FileSystemReader(ckpt_dir).read_metadata()
    sd = {}
    for key, item in md.state_dict_metadata.items():
        if isinstance(item, TensorStorageMetadata):
            sd[key] = torch.full(tuple(item.size), float("nan")).to(item.properties.dtype)
        elif isinstance(item, BytesStorageMetadata):
            sd[key] = io.BytesIO()
    return sd


def test_a_megatron_checkpoint_reads_the_same_as_with_torchs_reader(saved_checkpoint, monkeypatch):
    calls = []
    real = fast_reader.FastReader.read_data
    monkeypatch.setattr(fast_reader.FastReader, "read_data", lambda self, plan, planner: (calls.append(len(plan.items)), real(self, plan, planner))[1])
    ours, theirs = _empty_state_dict(saved_checkpoint), _empty_state_dict(saved_checkpoint)
    with safe_loads():
        dcp.load(ours, storage_reader=fast_reader.FastReader(saved_checkpoint))
        dcp.load(theirs, storage_reader=FileSystemReader(saved_checkpoint))
    assert calls and sum(calls) >= len(ours)
    tensors = [k for k in ours if torch.is_tensor(ours[k])]
    assert len(tensors) > 20  # model and optimizer state
    for key in tensors:
        assert torch.equal(ours[key], theirs[key]), key
    for key in set(ours) - set(tensors):
        assert repr(ours[key]) == repr(theirs[key]), key  # objects (bytes items, unpickled weights-only)


def test_plugtrons_loads_go_through_it(saved_checkpoint, tmp_path, monkeypatch):
    """A run from pretrained weights reads them through the memory-mapped reader."""
    from helpers import SMALL

    from plugtron.config import load_config
    from plugtron.training import train

    used = []
    real = fast_reader.FastReader.read_data
    monkeypatch.setattr(fast_reader.FastReader, "read_data", lambda self, plan, planner: (used.append(str(self.path)), real(self, plan, planner))[1])
    train(load_config(None, SMALL + ["train.eval_interval=null", "train.train_iters=2",
                                     f"checkpoint.pretrained_checkpoint={saved_checkpoint}"]))
    assert used and all(os.path.samefile(p, saved_checkpoint) for p in used)


def test_a_truncated_file_without_a_manifest_is_named(saved_checkpoint, tmp_path):
    """Another tool's checkpoint may have no manifest, so nothing checks sizes before the read: the
    reader names the file rather than mmap's 'mmap length is greater than file size'."""
    import shutil

    from helpers import SMALL

    from plugtron.config import load_config
    from plugtron.errors import CheckpointError
    from plugtron.training import train

    copy = tmp_path / "iter"
    shutil.copytree(saved_checkpoint, copy)
    (copy / "manifest.json").unlink()
    victim = sorted(copy.glob("*.distcp"))[0]
    os.truncate(victim, 100_000)
    with pytest.raises(CheckpointError, match=rf"{victim.name}: 100000 bytes, but the checkpoint index places a saved "
                                              r"tensor at bytes \d+\.\.\d+; the file is truncated$"):
        train(load_config(None, SMALL + ["train.eval_interval=null", "train.train_iters=2",
                                         f"checkpoint.pretrained_checkpoint={copy}"]))
