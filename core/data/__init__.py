"""Data: tokenizers, the bundled corpus, preprocessing (``plugtron.data.preprocess``), Megatron-Core
datasets, SFT datasets and deterministic micro batches.

``build_tokenizer`` and ``bundled_corpus_prefix`` are torch-free; ``build_datasets`` (Megatron-Core)
and the batch iterators (torch) are imported on first use, keeping ``import plugtron.data`` cheap
for commands that only list or validate.
"""

from plugtron.data.make_corpus import bundled_corpus_prefix
from plugtron.data.tokenizers import ByteLevelTokenizer, NullTokenizer, build_tokenizer

_LAZY = {
    "build_datasets": "plugtron.data.datasets",
    "sample_counts": "plugtron.data.gpt",
    "default_cache_dir": "plugtron.data.gpt",
    "MicroBatchIterator": "plugtron.data.batches",
    "EvalBatches": "plugtron.data.batches",
    "collate": "plugtron.data.batches",
    "build_sft_datasets": "plugtron.data.sft",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'plugtron.data' has no attribute {name!r}")


__all__ = [
    "ByteLevelTokenizer", "EvalBatches", "MicroBatchIterator", "NullTokenizer", "build_datasets", "build_sft_datasets",
    "build_tokenizer", "bundled_corpus_prefix", "collate", "default_cache_dir", "sample_counts",
]
