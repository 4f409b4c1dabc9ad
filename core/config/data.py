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
