"""``build_datasets``: the train/valid/test datasets of a config, whichever data format it picks.

A pretraining section (``GPTDatasetConfig``) builds through its registered pretraining format
(``plugtron.data.pretraining_formats``; ``indexed``, ``mock`` or a package's), an SFT section through
``plugtron.data.sft``. The checks every format shares (vocabulary, empty splits) are made here.
"""

from __future__ import annotations

from typing import Optional, Tuple

from plugtron.data.gpt import SPLITS
from plugtron.data.splits import sample_counts
from plugtron.errors import DataError


def build_datasets(cfg, tokenizer) -> Tuple[Optional[object], Optional[object], Optional[object]]:
    """(train, valid, test) datasets for ``cfg`` (a ``ConfigContainer``); a split that is asked for 0
    samples, or the test split when ``dataset.split`` gives it nothing, is ``None``. Call on every
    rank: with torch.distributed up, rank 0 builds the index cache first."""
    ds = cfg.dataset
    model_vocab = getattr(cfg.model, "vocab_size", None)
    if model_vocab is not None and model_vocab < tokenizer.vocab_size:
        raise DataError(f"model.vocab_size: {model_vocab} is smaller than the tokenizer's {tokenizer.vocab_size} "
                        f"({tokenizer.unique_identifiers['class']}); leave it unset to take the tokenizer's")
    if not hasattr(ds, "blend"):  # FinetuningDatasetConfig
        from plugtron.data.sft import build_sft_datasets

        return build_sft_datasets(cfg, tokenizer)
    sizes = sample_counts(cfg.train)
    if not any(sizes):
        return None, None, None  # nothing to draw; Megatron would also turn "no blend" into mock
    from plugtron.data.pretraining_formats import format_name, pretraining_format

    out = tuple(pretraining_format(ds).build(cfg, tokenizer, sizes))
    if len(out) != 3:
        raise DataError(f"dataset.data_format {format_name(ds)!r}: build returned {len(out)} datasets; "
                        "expected (train, valid, test)")
    for name, dset in zip(SPLITS, out):
        if dset is not None and len(dset) == 0:
            raise DataError(f"the {name} split has no complete sample of sequence_length "
                            f"{ds.sequence_length} (+1 label token); use more data or a shorter sequence")
    return out
