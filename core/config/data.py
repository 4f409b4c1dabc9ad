"""Data config sections: dataset and tokenizer (torch-free)."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional

import attrs


@attrs.define(kw_only=True)
class GPTDatasetConfig:
    """Pretraining data, built with Megatron-Core's ``BlendedMegatronDatasetBuilder``.

    ``data_format`` (a registered pretraining format, ``plugtron registry list data_format``):
    ``indexed`` (the default: Megatron ``.bin``/``.idx`` files, below), ``mock`` (synthetic data;
    ``mock: true``, Megatron Bridge's switch, picks it too) or a package's, with its options in
    ``format_options``. For ``indexed``, ``blend``: dataset path prefixes (``.bin``/``.idx`` without suffix); with weights, Megatron-LM's
    alternating form ``["0.3", "/a_text_document", "0.7", "/b_text_document"]``. ``None`` with
    ``mock=False`` uses the corpus bundled with plugtron. ``split`` is ``"train,valid,test"``
    proportions. ``sequence_length`` unset (``null``) follows ``model.seq_length`` (the one source
    of truth); set, it must equal it.
    """

    blend: Optional[List[str]] = None
    blend_per_split: Optional[List[Optional[List[str]]]] = None
    split: Optional[str] = "969,30,1"
    sequence_length: Optional[int] = None
    random_seed: int = 1234
    mock: bool = False
    path_to_cache: Optional[str] = None
    reset_position_ids: bool = False
    reset_attention_mask: bool = False
    eod_mask_loss: bool = False
    mmap_bin_files: bool = True
    num_dataset_builder_threads: int = 1
    dataloader_type: Literal["single", "cyclic"] = "single"
    # a registered pretraining data format (entry-point group plugtron.data_formats)
    data_format: str = "indexed"
    # the format's own options (its ``Options`` attrs class; unknown keys refused)
    format_options: Dict[str, Any] = attrs.field(factory=dict)


@attrs.define(kw_only=True)
class TokenizerConfig:
    """Tokenizer selection. Nothing is fetched from a hub: every file must be local.

    ``ByteLevelTokenizer`` (256 byte ids + EOD) needs no file and is what the bundled corpus uses;
    ``NullTokenizer`` treats text as space-separated integer ids below ``vocab_size``.
    """

    # a registered tokenizer kind (entry-point group plugtron.tokenizers; plugtron registry list tokenizer)
    tokenizer_type: str = "ByteLevelTokenizer"
    vocab_file: Optional[str] = None
    merge_file: Optional[str] = None
    tokenizer_model: Optional[str] = None
    vocab_size: Optional[int] = None


@attrs.define(kw_only=True)
class PackedSequenceSpecs:
    """Offline packing of several SFT examples per row (``micro_batch_size`` must be 1).

    ``packed_sequence_size`` > 0 turns packing on and must equal ``dataset.seq_length``. The packed
    files are written next to the data (``<dataset_root>/packed/``) and reused while the data,
    tokenizer and settings are unchanged; ``packed_*_data_path`` put them elsewhere.
    """

    packed_sequence_size: int = -1
    packed_train_data_path: Optional[str] = None
    packed_val_data_path: Optional[str] = None


@attrs.define(kw_only=True)
class FinetuningDatasetConfig:
    """SFT data: ``dataset_root`` with ``training.jsonl`` / ``validation.jsonl`` / ``test.jsonl``
    (or ``.json``, ``.parquet``, ``.arrow``, a ``save_to_disk`` directory per split, or a saved
    ``DatasetDict``: docs/sft.md; all but JSON need the ``datasets`` extra).

    ``data_format`` (docs/sft.md): ``input_output`` (``input_key`` prompt, ``output_key`` answer),
    ``chat`` (OpenAI ``messages_key`` list, tool calls included), ``sharegpt`` (``conversations_key``
    list of from/value turns, speakers mapped by ``role_map`` over the usual names) or ``alpaca``
    (``instruction_key``, optional ``input_key``, ``output_key``). Conversations are rendered with
    ``chat_template`` (unset: the tokenizer's own; ``plugtron``, ``chatml``, a file or Jinja text) and
    ``loss_mode`` picks the learned messages (``assistant``, ``last_turn``, ``full``).
    ``validation.jsonl``/``test.jsonl`` may be absent: that split is then skipped, or carved out of the
    training records (``val_proportion``/``test_proportion``: fractions, a permutation seeded with
    ``seed``). ``columns`` renames source columns to the names the format reads
    (``{messages: conversation}``). An example longer than ``seq_length + 1`` tokens is
    cut: first ``truncation_field`` from ``truncation_method``'s side, then the other field (chat:
    from the right). ``eval_iters`` is shared by validation and test (the guide's rule).
    ``seq_length`` unset (``null``) follows ``model.seq_length``; set, it must equal it.
    """

    dataset_root: Optional[str] = None
    seq_length: Optional[int] = None
    seed: int = 1234
    do_validation: bool = True
    do_test: bool = True
    packed_sequence_specs: Optional[PackedSequenceSpecs] = None
    # a registered data format (entry-point group plugtron.data_formats; plugtron registry list data_format)
    data_format: str = "input_output"
    # the format's own options (its ``Options`` attrs class; unknown keys refused)
    format_options: Dict[str, Any] = attrs.field(factory=dict)
    input_key: str = "input"
    output_key: str = "output"
    messages_key: str = "messages"
    conversations_key: str = "conversations"
    instruction_key: str = "instruction"
    role_map: Dict[str, str] = attrs.Factory(dict)
    # {name the format reads: source column}, for any source (a JSONL key, a Parquet column, ...)
    columns: Dict[str, str] = attrs.Factory(dict)
    # fractions of the training records held out as validation / test when those files are absent
    val_proportion: Optional[float] = None
    test_proportion: Optional[float] = None
    chat_template: Optional[str] = None
    loss_mode: Literal["assistant", "last_turn", "full"] = "assistant"
    # "left" keeps the end of a long prompt, the part next to the answer.
    truncation_field: Literal["input", "output"] = "input"
    truncation_method: Literal["left", "right"] = "left"

    @property
    def packing(self) -> bool:
        return self.packed_sequence_specs is not None and self.packed_sequence_specs.packed_sequence_size > 0

    def problems(self, train) -> List[str]:
        """Config-only checks (no file access), reported by ``ConfigContainer.validate()``."""
        out = []
        if not self.dataset_root:
            out.append("dataset.dataset_root: required (a directory with training.jsonl, validation.jsonl, test.jsonl)")
        shares = {"val_proportion": self.val_proportion, "test_proportion": self.test_proportion}
        for name, share in shares.items():
            if share is not None and not 0 <= share < 1:
                out.append(f"dataset.{name}: {share} is not a fraction in [0, 1) of the training records")
        if sum(s for s in shares.values() if s and 0 < s < 1) >= 1:
            out.append("dataset.val_proportion + dataset.test_proportion: must leave training records (sum < 1)")
        for name, column in self.columns.items():
            if not name or not column:
                out.append(f"dataset.columns: {name!r}: {column!r}: expected {{name the format reads: source column}}, "
                           "both non-empty")
        if len(set(self.columns.values())) < len(self.columns):
            out.append(f"dataset.columns: {self.columns} reads one source column under two names")
        if self.packing:
            size = self.packed_sequence_specs.packed_sequence_size
            if train.micro_batch_size != 1:
                out.append(f"train.micro_batch_size: {train.micro_batch_size}, but packed sequences "
                           "(dataset.packed_sequence_specs) need micro_batch_size 1: each row already holds "
                           "several examples; raise train.global_batch_size instead")
            if size != self.seq_length:
                out.append(f"dataset.packed_sequence_specs.packed_sequence_size: {size} differs from "
                           f"dataset.seq_length {self.seq_length}; a packed row is one model sequence")
        return out
