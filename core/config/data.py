"""Data config sections: dataset and tokenizer (torch-free)."""

from __future__ import annotations

from typing import List, Literal, Optional

import attrs


@attrs.define(kw_only=True)
class GPTDatasetConfig:
    """Pretraining data, built with Megatron-Core's ``BlendedMegatronDatasetBuilder``.

    ``blend``: dataset path prefixes (``.bin``/``.idx`` without suffix); with weights, Megatron-LM's
    alternating form ``["0.3", "/a_text_document", "0.7", "/b_text_document"]``. ``None`` with
    ``mock=False`` uses the corpus bundled with plugtron. ``split`` is ``"train,valid,test"``
    proportions. ``sequence_length`` must equal ``model.seq_length``.
    """

    blend: Optional[List[str]] = None
    blend_per_split: Optional[List[Optional[List[str]]]] = None
    split: Optional[str] = "969,30,1"
    sequence_length: int = 128
    random_seed: int = 1234
    mock: bool = False
    path_to_cache: Optional[str] = None
    reset_position_ids: bool = False
    reset_attention_mask: bool = False
    eod_mask_loss: bool = False
    mmap_bin_files: bool = True
    num_dataset_builder_threads: int = 1
    dataloader_type: Literal["single", "cyclic"] = "single"


@attrs.define(kw_only=True)
class TokenizerConfig:
    """Tokenizer selection. Nothing is fetched from a hub: every file must be local.

    ``ByteLevelTokenizer`` (256 byte ids + EOD) needs no file and is what the bundled corpus uses;
    ``NullTokenizer`` treats text as space-separated integer ids below ``vocab_size``.
    """

    tokenizer_type: Literal[
        "ByteLevelTokenizer", "NullTokenizer", "GPT2BPETokenizer", "HuggingFaceTokenizer",
        "SentencePieceTokenizer",
    ] = "ByteLevelTokenizer"
    vocab_file: Optional[str] = None
    merge_file: Optional[str] = None
    tokenizer_model: Optional[str] = None
    vocab_size: Optional[int] = None


@attrs.define(kw_only=True)
class PackedSequenceSpecs:
    """Offline packing of several SFT examples per row (``micro_batch_size`` must be 1)."""

    packed_sequence_size: int = -1
    packed_train_data_path: Optional[str] = None
    packed_val_data_path: Optional[str] = None


@attrs.define(kw_only=True)
class FinetuningDatasetConfig:
    """SFT data: ``dataset_root`` with ``training.jsonl`` / ``validation.jsonl`` / ``test.jsonl``.

    Accepted by the config (so recipes and the migration guide's snippets load); the SFT data
    pipeline itself is not in this version: training with it stops with a clear error.
    """

    dataset_root: Optional[str] = None
    seq_length: int = 2048
    seed: int = 1234
    do_validation: bool = True
    do_test: bool = True
    packed_sequence_specs: Optional[PackedSequenceSpecs] = None
