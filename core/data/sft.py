"""SFT datasets: one example per row (padded), or several per row when packed.

Both yield Megatron's sample keys (``tokens``, ``labels``, ``loss_mask``, ``position_ids``), so the
training loop, ``MicroBatchIterator`` and the loss are the same as for pretraining. Packed rows also
carry a block-diagonal causal ``attention_mask`` ([1, s, s] bool, True = masked) and restart
``position_ids`` at 0 for every example: each example attends only to itself, exactly as unpacked.
That mask is what the local (pure torch) layer spec needs; with Transformer Engine layers the training
step passes the same boundaries as ``cu_seqlens`` (``packed_seq_params``, THD layout) instead.

Order: sample ``i`` is row ``perm_e[i mod n]`` of epoch ``e = i // n``, ``perm_e`` a permutation
seeded by ``(dataset.seed, e)``: a pure function of the seed and consumed samples, so a resumed run
continues the same stream.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, List, Optional

import numpy
import torch

from plugtron.data.packing import PackedRows, packed_path, write_packed
from plugtron.data.sft_examples import check_file, load_examples
from plugtron.data.sft_sources import SPLIT_NAMES, resolve_splits
from plugtron.errors import DataError

log = logging.getLogger("plugtron")
SPLITS = ("train", "valid", "test")


def make_sample(examples, seq_length: int, eod: int, packed: bool):
    """Lay ``examples`` (list of (ids, answer)) out in one row of ``seq_length`` positions."""
    tokens = numpy.full(seq_length, eod, dtype=numpy.int64)
    labels = numpy.full(seq_length, eod, dtype=numpy.int64)
    loss_mask = numpy.zeros(seq_length, dtype=numpy.float32)
    position_ids = numpy.arange(seq_length, dtype=numpy.int64)
    segment = numpy.full(seq_length, len(examples), dtype=numpy.int64)  # padding: a segment of its own
    cu_seqlens, pos = [0], 0
    for k, (ids, answer) in enumerate(examples):
        m = len(ids) - 1
        if pos + m > seq_length:
            raise DataError(f"packed row overflows seq_length {seq_length}")
        tokens[pos:pos + m], labels[pos:pos + m] = ids[:-1], ids[1:]
        loss_mask[pos:pos + m] = answer[1:]
        position_ids[pos:pos + m] = numpy.arange(m)
        segment[pos:pos + m] = k
        pos += m
        cu_seqlens.append(pos)
    position_ids[pos:] = numpy.arange(seq_length - pos)
    sample = {"tokens": torch.from_numpy(tokens), "labels": torch.from_numpy(labels),
              "loss_mask": torch.from_numpy(loss_mask), "position_ids": torch.from_numpy(position_ids),
              "real_tokens": pos}  # positions holding example tokens; the rest is padding ("tokens seen")
    if packed:
        seg = torch.from_numpy(segment)
        # Cost: s*s bytes per row (16 MiB at s=4096); only the CPU/local-spec path needs it.
        causal = torch.ones(seq_length, seq_length, dtype=torch.bool).triu(1)
        sample["attention_mask"] = ((seg[:, None] != seg[None, :]) | causal).unsqueeze(0)
        sample["cu_seqlens"] = torch.tensor(cu_seqlens + ([seq_length] if pos < seq_length else []), dtype=torch.int32)
    return sample


def longest_segment(cu_seqlens: torch.Tensor) -> int:
    return int((cu_seqlens[1:] - cu_seqlens[:-1]).max())


def packed_seq_params(cu_seqlens: torch.Tensor, max_seqlen: Optional[int] = None):
    """Megatron's ``PackedSeqParams`` (THD layout) for one packed row: the GPU/TE path.
    ``max_seqlen``: the longest segment, if known (computing it from a GPU tensor is a sync)."""
    from megatron.core.packed_seq_params import PackedSeqParams

    cu = cu_seqlens.to(torch.int32)
    longest = longest_segment(cu) if max_seqlen is None else int(max_seqlen)
    return PackedSeqParams(qkv_format="thd", cu_seqlens_q=cu, cu_seqlens_kv=cu,
                           max_seqlen_q=longest, max_seqlen_kv=longest)


class SFTDataset:
    """``num_rows`` rows served in a fresh seeded permutation every epoch, ``epochs`` long enough for
    the requested samples."""

    def __init__(self, get_row: Callable[[int], list], num_rows: int, num_samples: int, seed: int,
                 seq_length: int, eod: int, packed: bool) -> None:
        self.get_row, self.n, self.seed = get_row, num_rows, seed
        self.seq_length, self.eod, self.packed = seq_length, eod, packed
        self.epochs = max(1, -(-num_samples // num_rows))
        self._perm_epoch, self._perm = -1, None

    def __len__(self) -> int:
        return self.n * self.epochs

    def row_index(self, idx: int) -> int:
        epoch, i = divmod(int(idx) % len(self), self.n)
        if epoch != self._perm_epoch:
            self._perm = numpy.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return int(self._perm[i])

    def __getitem__(self, idx: int):
        return make_sample(self.get_row(self.row_index(idx)), self.seq_length, self.eod, self.packed)


def _split(source, ds, tokenizer, num_samples: int, seed: int, explicit_packed: Optional[str]) -> SFTDataset:
    """One split's dataset; ``source`` is an ``sft_sources.Source`` or ``None`` (only a prepacked file)."""
    if ds.packing:
        size = ds.packed_sequence_specs.packed_sequence_size
        if explicit_packed:  # used as is once it exists (the source may then be absent)
            target = os.path.abspath(os.path.expanduser(explicit_packed))
        else:
            target = packed_path(source, ds, tokenizer)

        def pack() -> None:
            if os.path.isfile(target):
                return  # reuse
            if source is None:
                raise DataError(f"dataset.packed_sequence_specs: {target} not found and no source to pack it from")
            examples, dropped = load_examples(source, ds, tokenizer)
            _report_dropped(source, dropped)
            write_packed(target, examples, size)
            log.info(f"packed {len(examples)} examples of {source} into {target}")

        _rank0_first(pack, target)  # every rank calls it: whether to pack is rank 0's decision alone
        rows = PackedRows(target, size)
        return SFTDataset(rows.row, len(rows), num_samples, seed, ds.seq_length, tokenizer.eod, packed=True)
    examples, dropped = load_examples(source, ds, tokenizer)
    _report_dropped(source, dropped)
    return SFTDataset(lambda i: [examples[i]], len(examples), num_samples, seed, ds.seq_length, tokenizer.eod,
                      packed=False)


def _rank0_first(fn: Callable[[], None], what: str) -> None:
    """Run ``fn`` on global rank 0 only while the others wait (one writer per packed file; a shared
    filesystem is assumed, as for Megatron's index cache). Rank 0's outcome is broadcast rather than
    met at a barrier, so a failure there stops every rank instead of leaving them waiting."""
    import torch.distributed as dist

    from plugtron import distributed

    if distributed.world_size() == 1:
        return fn()
    failed, error = 0, None
    if distributed.is_rank0():
        try:
            fn()
        except Exception as err:  # re-raised below, after telling the other ranks
            failed, error = 1, err
    flag = torch.tensor([failed], dtype=torch.int32, device="cuda" if torch.cuda.is_available() else "cpu")
    dist.broadcast(flag, src=0)
    if error is not None:
        raise error
    if int(flag[0]):
        raise DataError(f"rank 0 failed to write {what}; its error message says why")


def _report_dropped(path, dropped: int) -> None:
    if dropped:
        log.warning(f"{path}: {dropped} example(s) skipped: seq_length left no answer token to learn")


def sft_sample_counts(train, ds) -> List[int]:
    from plugtron.data.splits import sample_counts

    train_n, valid_n, test_n = sample_counts(train)
    return [train_n, valid_n if ds.do_validation else 0, test_n if ds.do_test and train.eval_iters > 0 else 0]


def build_sft_datasets(cfg, tokenizer):
    """(train, valid, test) for a ``FinetuningDatasetConfig``; a split not asked for is ``None``.
    The test split is never packed (it is read once, at the end)."""
    ds = cfg.dataset
    problems = ds.problems(cfg.train)
    if problems:
        raise DataError("; ".join(problems))
    specs = ds.packed_sequence_specs
    explicit = {"train": specs.packed_train_data_path if specs else None,
                "valid": specs.packed_val_data_path if specs else None, "test": None}
    sources = checked_sources(cfg.train, ds, explicit)
    out = []
    for split, n in zip(SPLITS, sft_sample_counts(cfg.train, ds)):
        if n == 0 or split not in sources:
            out.append(None)
            continue
        seed = ds.seed + {"train": 0, "valid": 1, "test": 2}[split]  # independent orders per split
        if split == "test" and ds.packing:
            out.append(_split(sources[split], _unpacked_view(ds), tokenizer, n, seed, None))
        else:
            out.append(_split(sources[split], ds, tokenizer, n, seed, explicit[split]))
    return tuple(out)


def checked_sources(train, ds, explicit) -> dict:
    """The sources of the splits to build (``None`` for one served from an existing prepacked file
    alone), every one checked (readable, every record of the expected shape) before any tokenizing
    or packing. The training split is required; an absent validation or test split is skipped
    (stated in the log) unless carved out of the training records (``dataset.val_proportion``, ...)."""
    found = resolve_splits(ds, require_train=not (explicit.get("train") and
                                                  os.path.isfile(os.path.expanduser(explicit["train"]))))
    out = {}
    for split, n in zip(SPLITS, sft_sample_counts(train, ds)):
        if n == 0:
            continue
        reuse = explicit.get(split) and os.path.isfile(os.path.expanduser(explicit[split]))
        if found[split] is None:
            if reuse:
                out[split] = None
            else:
                log.info(f"{ds.dataset_root}: no {SPLIT_NAMES[split]} split: training without it")
            continue
        check_file(found[split], ds)
        out[split] = found[split]
    return out


def _unpacked_view(ds):
    import attrs

    return attrs.evolve(ds, packed_sequence_specs=None)
