"""Train/valid/test datasets through Megatron-Core's ``BlendedMegatronDatasetBuilder``.

Megatron's builder has two failure modes that give no error, so everything that can go wrong is
checked here first, identically on every rank, before the builder runs:

- ``GPTDataset._get_num_epochs`` adds epochs until the split holds enough tokens; a split with no
  tokens (0 documents, e.g. 300 documents with split ``949,50,1``) makes that loop forever, even
  for 0 requested samples.
- With torch.distributed initialized, rank 0 builds first and the others wait in a barrier: an error
  raised on rank 0 alone would leave them waiting forever.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import struct
from typing import List, Optional, Sequence, Tuple

import numpy

from plugtron.data.make_corpus import bundled_corpus_prefix
from plugtron.data.splits import sample_counts  # noqa: F401 (re-exported)
from plugtron.errors import DataError

SPLITS = ("train", "valid", "test")
_IDX_HEADER = b"MMIDIDX\x00\x00"
_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 8, 7: 4, 8: 2}  # Megatron's DType codes -> bytes

Blend = Tuple[List[str], Optional[List[float]]]


def default_cache_dir() -> str:
    """Where sample indices are cached when ``dataset.path_to_cache`` is unset; never next to the
    data, which may be read-only (the bundled corpus inside site-packages)."""
    root = os.environ.get("PLUGTRON_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "plugtron")
    return os.path.join(root, "index")


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def parse_blend(entries: Optional[Sequence], key: str) -> Optional[Blend]:
    """Plain prefixes, or Megatron-LM's alternating ``["0.3", "a", "0.7", "b"]`` -> (prefixes, weights)."""
    if entries is None:
        return None
    items = [str(e).strip() for e in entries]
    if not items:
        raise DataError(f"{key}: empty list; give dataset path prefixes or weight/prefix pairs")
    numeric = [_is_number(s) for s in items]
    if not any(numeric):
        prefixes, weights = items, None
    elif len(items) % 2 == 0 and all(numeric[0::2]) and not any(numeric[1::2]):
        weights, prefixes = [float(w) for w in items[0::2]], items[1::2]
        bad = [w for w in weights if not w > 0]
        if bad:
            raise DataError(f"{key}: weights must be positive, got {bad}")
    else:
        raise DataError(
            f"{key}: {items} mixes numbers and paths; expected either path prefixes "
            "or alternating weight/prefix pairs like ['0.3', '/data/a_text_document', '0.7', '/data/b_text_document']"
        )
    return [os.path.abspath(os.path.expanduser(p)) for p in prefixes], weights


def parse_split(split: Optional[str]) -> List[float]:
    try:
        parts = [float(p) for p in str(split).split(",")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts) or sum(parts) <= 0:
        raise DataError(f"dataset.split: {split!r} is not 1 to 3 comma-separated non-negative numbers like '969,30,1'")
    return parts + [0.0] * (3 - len(parts))


def read_sequence_lengths(prefix: str, key: str) -> numpy.ndarray:
    """Document lengths from ``prefix.idx``, after checking both files exist and agree."""
    hint = " (give the prefix without .bin/.idx)" if prefix.endswith((".bin", ".idx")) else ""
    for suffix in (".bin", ".idx"):
        if not os.path.isfile(prefix + suffix):
            raise DataError(f"{key}: {prefix + suffix} not found; a Megatron indexed dataset needs "
                            f"both {prefix}.bin and {prefix}.idx{hint}")
    idx = prefix + ".idx"
    with open(idx, "rb") as f:
        head = f.read(34)
    if len(head) < 34 or head[:9] != _IDX_HEADER or struct.unpack("<Q", head[9:17])[0] != 1:
        raise DataError(f"{key}: {idx} is not a Megatron indexed dataset index (bad header)")
    code, count, n_doc_idx = head[17], struct.unpack("<Q", head[18:26])[0], struct.unpack("<Q", head[26:34])[0]
    if code not in _ITEMSIZE:
        raise DataError(f"{key}: {idx} names unknown token dtype code {code}")
    if count == 0:
        raise DataError(f"{key}: {prefix} is empty (0 documents in {idx})")
    # Megatron maps the arrays without checking their extent: a truncated or absurd header would
    # fail inside IndexedDataset (and again in its __del__) without naming the file.
    expected_idx = 34 + count * (4 + 8) + n_doc_idx * 8  # lengths int32, pointers int64, document starts int64
    actual_idx = os.path.getsize(idx)
    if actual_idx != expected_idx:
        raise DataError(f"{key}: {idx} is {actual_idx} bytes, but its header describes {count} sequences and "
                        f"{n_doc_idx} document offsets ({expected_idx} bytes); the index is truncated or corrupt")
    doc_idx = numpy.fromfile(idx, dtype=numpy.int64, count=n_doc_idx, offset=34 + count * 12)
    if n_doc_idx < 2 or doc_idx[0] != 0 or doc_idx[-1] != count or bool((numpy.diff(doc_idx) < 0).any()):
        raise DataError(f"{key}: {idx} has inconsistent document offsets (expected 0 ... {count}, ascending); "
                        "the index is corrupt")
    lengths = numpy.fromfile(idx, dtype=numpy.int32, count=count, offset=34)
    if bool((lengths < 0).any()):
        raise DataError(f"{key}: {idx} holds negative sequence lengths; the index is corrupt")
    expected = int(lengths.sum(dtype=numpy.int64)) * _ITEMSIZE[code]
    actual = os.path.getsize(prefix + ".bin")
    if len(lengths) != count or actual != expected:
        raise DataError(f"{key}: {prefix}.bin has {actual} bytes but {idx} describes {expected}; "
                        "the pair is truncated or mismatched")
    return lengths


def _check_split_range(lengths, bounds, prefix, key, split_desc, name) -> None:
    # Same rounding as BlendedMegatronDatasetBuilder._build_megatron_dataset_splits.
    n = len(lengths)
    beg, end = int(round(bounds[0] * n)), int(round(bounds[1] * n))
    if end <= beg:
        raise DataError(f"{key}: {split_desc} gives the {name} split 0 of the {n} documents in {prefix}; "
                        "Megatron would loop forever building it. Use more documents or a larger share")
    if int(lengths[beg:end].sum(dtype=numpy.int64)) == 0:
        raise DataError(f"{key}: the {name} split of {prefix} (documents {beg}..{end - 1}) holds no tokens")


def _missing_split(name: str, why: str) -> None:
    """A requested split without data: train and valid (eval on) are errors, test is skipped."""
    if name != "test":
        raise DataError(f"{why}, but {name} needs samples"
                        + (" (set train.eval_iters: 0 to turn evaluation off)" if name == "valid" else ""))


def _fingerprint(prefixes: Sequence[str]) -> str:
    """Content-derived name for the default cache: Megatron's cache key holds the data *path*, not
    its content, so a corpus rebuilt in place (a new plugtron version's bundled corpus) would
    otherwise silently reuse sample indices of the old one. Reads at most 2 MiB per .idx."""
    h = hashlib.md5(usedforsecurity=False)
    for prefix in prefixes:
        idx = prefix + ".idx"
        size = os.path.getsize(idx)
        h.update(f"{prefix}|{size}|{os.path.getsize(prefix + '.bin')}|".encode())
        with open(idx, "rb") as f:
            h.update(f.read(1 << 20))
            f.seek(max(size - (1 << 20), 0))
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def _writable_cache(path: Optional[str], prefixes: Sequence[str]) -> Optional[str]:
    """``dataset.path_to_cache`` as given, else a per-data subfolder of ``default_cache_dir()``;
    ``None`` (no cache) when some node cannot see it. Collective: see ``index_cache.prepare``."""
    from plugtron.data import index_cache

    key = "dataset.path_to_cache" if path else "$PLUGTRON_CACHE_DIR (default index cache)"
    path = os.path.abspath(os.path.expanduser(path or os.path.join(default_cache_dir(), _fingerprint(prefixes))))
    return index_cache.prepare(path, key)


class _NoCacheNotice(logging.Filter):
    """Drops Megatron's warning that indices are not cached: plugtron leaves them uncached on purpose
    (mock data; a blend's top level when torch.distributed is down, see ``_builder_class``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "because path_to_cache is None" not in record.getMessage()


def _builder_class():
    """Megatron's builder, except that a ``BlendedDataset`` built without torch.distributed does not
    cache its indices: on a cache miss ``BlendedDataset._build_indices`` calls
    ``torch.distributed.get_rank()`` unguarded (megatron-core 0.16.1), which raises when the default
    process group is not initialized. Its indices are cheap to rebuild."""
    import torch
    from megatron.core.datasets.blended_dataset import BlendedDataset
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder

    for name in ("megatron.core.datasets.gpt_dataset", "megatron.core.datasets.blended_dataset"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoCacheNotice) for f in log.filters):
            log.addFilter(_NoCacheNotice())

    class Builder(BlendedMegatronDatasetBuilder):
        @staticmethod
        def build_generic_dataset(cls, is_built_on_rank, synchronize_ranks, *args):
            if cls is BlendedDataset and not torch.distributed.is_initialized():
                config = copy.copy(args[-1])
                config.path_to_cache = None
                args = (*args[:-1], config)
            return BlendedMegatronDatasetBuilder.build_generic_dataset(
                cls, is_built_on_rank, synchronize_ranks, *args)

    return Builder


def _common(ds, tokenizer) -> dict:
    """Megatron ``GPTDatasetConfig`` fields every pretraining build shares."""
    return dict(
        random_seed=ds.random_seed, sequence_length=ds.sequence_length, tokenizer=tokenizer,
        reset_position_ids=ds.reset_position_ids, reset_attention_mask=ds.reset_attention_mask,
        eod_mask_loss=ds.eod_mask_loss,
        # The full [s, s] mask is only needed to stop attention across documents; without it the
        # attention kernel's own causal mask is enough and each sample is s*s bytes lighter.
        create_attention_mask=ds.reset_attention_mask,
        mmap_bin_files=ds.mmap_bin_files, num_dataset_builder_threads=ds.num_dataset_builder_threads,
    )


def build_mock(cfg, tokenizer, sizes: Sequence[int]) -> Tuple:
    """Megatron's ``MockGPTDataset`` splits (the ``mock`` data format): synthetic documents, no files."""
    from megatron.core.datasets.gpt_dataset import GPTDatasetConfig, MockGPTDataset

    mcfg = GPTDatasetConfig(**_common(cfg.dataset, tokenizer))  # no cache: every rank builds alike
    for i, size in enumerate(sizes):
        if size == 0:
            mcfg.split_matrix[i] = None
    return _build(MockGPTDataset, sizes, mcfg)


def build_indexed(cfg, tokenizer, sizes: Sequence[int]) -> Tuple:
    """``GPTDataset`` splits over Megatron ``.bin``/``.idx`` files (the ``indexed`` data format):
    ``dataset.blend`` (split by ``dataset.split``), ``dataset.blend_per_split``, or the bundled
    corpus when neither is set."""
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    ds = cfg.dataset
    common = _common(ds, tokenizer)
    if ds.blend_per_split is not None and any(b is not None for b in ds.blend_per_split):
        if ds.blend is not None:
            raise DataError("dataset.blend and dataset.blend_per_split are exclusive; set one of them")
        if len(ds.blend_per_split) != 3:
            raise DataError(f"dataset.blend_per_split: expected 3 entries (train, valid, test), got {len(ds.blend_per_split)}")
        blends: List[Optional[Blend]] = []
        for i, name in enumerate(SPLITS):
            key = f"dataset.blend_per_split[{i}]"
            blend = parse_blend(ds.blend_per_split[i], key)
            if blend is not None and sizes[i] > 0:
                for prefix in blend[0]:
                    _check_split_range(read_sequence_lengths(prefix, key), (0.0, 1.0), prefix, key, "it", name)
            elif blend is None and sizes[i] > 0:
                _missing_split(name, f"{key} ({name}) is null")
            blends.append(blend if sizes[i] > 0 else None)
        cache = _writable_cache(ds.path_to_cache, [p for b in blends if b is not None for p in b[0]])
        mcfg = GPTDatasetConfig(**common, blend_per_split=blends, split=None, path_to_cache=cache)
        return _build(GPTDataset, sizes, mcfg)
    key = "dataset.blend"
    if ds.blend is None and tokenizer.unique_identifiers.get("class") != "ByteLevelTokenizer":
        raise DataError("dataset.blend: unset, so the bundled corpus is used, but it is tokenized with "
                        "ByteLevelTokenizer; set tokenizer.tokenizer_type: ByteLevelTokenizer or give a blend")
    blend = parse_blend(ds.blend, key) if ds.blend is not None else ([bundled_corpus_prefix()], None)
    weights = parse_split(ds.split)
    all_lengths = [read_sequence_lengths(p, key) for p in blend[0]]
    mcfg = GPTDatasetConfig(**common, blend=blend, split=ds.split,
                            path_to_cache=_writable_cache(ds.path_to_cache, blend[0]))
    for i, name in enumerate(SPLITS):
        if sizes[i] == 0 or weights[i] == 0:
            if sizes[i] > 0:
                _missing_split(name, f"dataset.split={ds.split!r} gives the {name} split no share")
            mcfg.split_matrix[i] = None  # not built at all: an empty split would loop forever
            continue
        for prefix, lengths in zip(blend[0], all_lengths):
            _check_split_range(lengths, mcfg.split_matrix[i], prefix, key, f"dataset.split={ds.split!r}", name)
    return _build(GPTDataset, sizes, mcfg)


def _build(cls, sizes: Sequence[int], mcfg) -> Tuple:
    from plugtron.data.index_cache import writer_lock

    try:
        with writer_lock(getattr(mcfg, "path_to_cache", None)):  # rank 0 builds, the others wait in build()
            return tuple(_builder_class()(cls, list(sizes), lambda: True, mcfg).build())
    except DataError:
        raise
    except Exception as err:  # Megatron reports with asserts; keep the message, drop the traceback
        raise DataError(f"building {cls.__name__} splits failed: {type(err).__name__}: {err}") from err
