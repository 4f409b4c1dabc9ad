"""Tokenizers loaded from local files: GPT-2 BPE (vocab.json + merges.txt), Hugging Face
(``tokenizer.json`` or a directory holding one) and SentencePiece (``.model``).

All three are thin wrappers with the interface Megatron-Core's ``GPTDataset`` reads (``vocab_size``,
``eod``, ``unique_identifiers``) plus ``tokenize``/``detokenize``. Nothing is ever fetched from a hub:
every path must exist locally, and a missing one is a ``DataError`` naming it. The backing libraries
(``tokenizers``, ``sentencepiece``) are an optional extra, imported on first use.

Why not Megatron-Core's own ``megatron.core.tokenizers``: its Hugging Face and GPT-2 paths go through
``transformers.AutoTokenizer`` and download missing vocabularies; these wrappers stay torch-free and
light enough to be rebuilt inside every ``plugtron data preprocess`` worker process.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from typing import Iterable, List, Optional

from plugtron.errors import DataError

EXTRA_HINT = "install the optional extra: pip install 'plugtron[tokenizers]'"
# End-of-document candidates, in order, when a Hugging Face tokenizer names no eos_token.
_EOS_NAMES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eot_id|>", "<|im_end|>")


def _require_file(path: Optional[str], key: str, what: str) -> str:
    if not path:
        raise DataError(f"{key}: required for this tokenizer ({what})")
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(path):
        raise DataError(f"{key}: {path} not found ({what}); tokenizer files must be local, nothing is downloaded")
    return path


def _digest(paths: Iterable[str]) -> str:
    """Content hash for ``unique_identifiers``: Megatron names cached sample indices after it, and a
    vocabulary retrained in place must not reuse them. Reads the (small) tokenizer files once."""
    h = hashlib.md5(usedforsecurity=False)
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


def _import(module: str, kind: str):
    try:
        return __import__(module)
    except ImportError:
        raise DataError(f"tokenizer.tokenizer_type: {kind} needs the '{module}' package; {EXTRA_HINT}") from None


class _FileBacked:
    """What Megatron's datasets read from every file-backed tokenizer: ``vocab_size``, ``eod`` and
    ``unique_identifiers`` (with a content hash of the files)."""

    def _identify(self, eod: int, vocab_size: int, files: List[str]) -> None:
        self._eod, self._vocab_size = int(eod), int(vocab_size)
        self.unique_identifiers = OrderedDict(
            [("class", type(self).__name__), ("files", files), ("sha", _digest(files)),
             ("vocab_size", self._vocab_size)])

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def eod(self) -> int:
        return self._eod


class _HFBacked(_FileBacked):
    """Common part of the tokenizers backed by a ``tokenizers.Tokenizer``."""

    def __init__(self, tok, eod: int, files: List[str]) -> None:
        self._tok = tok
        self._identify(eod, tok.get_vocab_size(with_added_tokens=True), files)

    def tokenize(self, text: str) -> List[int]:
        # No special tokens (BOS) added: SFT answer masks and packing count exactly the text's tokens.
        return self._tok.encode(text, add_special_tokens=False).ids

    def tokenize_batch(self, texts: List[str]) -> List[List[int]]:
        """One Rust call for many documents (what ``data preprocess`` uses). It runs on Rust threads
        unless TOKENIZERS_PARALLELISM=false, which preprocess workers set: processes are the parallelism."""
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def detokenize(self, ids: Iterable[int]) -> str:
        return self._tok.decode([int(i) for i in ids if 0 <= int(i) < self._vocab_size and int(i) != self._eod],
                                skip_special_tokens=False)


def _gpt2_tokenizer(vocab: str, merges: str):
    tk = _import("tokenizers", "GPT2BPETokenizer")
    try:
        model = tk.models.BPE.from_file(vocab, merges)
    except Exception as err:  # the Rust side reports parse errors as plain Exceptions
        raise DataError(f"tokenizer: cannot read GPT-2 BPE files {vocab} / {merges}: {err}") from None
    tok = tk.Tokenizer(model)
    # GPT-2's byte-to-unicode mapping and pre-tokenization regex; no prefix space, as GPT-2.
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    return tok


class GPT2BPETokenizer(_HFBacked):
    """GPT-2 style byte-level BPE from ``vocab.json`` + ``merges.txt``; EOD is ``<|endoftext|>``."""

    def __init__(self, vocab_file: Optional[str], merge_file: Optional[str]) -> None:
        vocab = _require_file(vocab_file, "tokenizer.vocab_file", "GPT-2 vocab.json")
        merges = _require_file(merge_file, "tokenizer.merge_file", "GPT-2 merges.txt")
        tok = _gpt2_tokenizer(vocab, merges)
        eod = tok.token_to_id("<|endoftext|>")
        if eod is None:
            raise DataError(f"tokenizer.vocab_file: {vocab} has no '<|endoftext|>' token, which GPT2BPETokenizer "
                            "uses as end-of-document")
        super().__init__(tok, eod, [vocab, merges])


def _hf_eos_name(directory: str) -> Optional[str]:
    """``eos_token`` from ``tokenizer_config.json`` or ``special_tokens_map.json``, if any."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                eos = json.load(f).get("eos_token")
        except (OSError, ValueError, AttributeError) as err:
            raise DataError(f"tokenizer.tokenizer_model: {path} is not a JSON object ({err})") from None
        if isinstance(eos, dict):
            eos = eos.get("content")
        if isinstance(eos, str) and eos:
            return eos
    return None


def _hf_chat_info(directory: str):
    """(chat template or None, special token strings) as ``transformers`` would load them: a
    ``chat_template.jinja`` file first, else ``tokenizer_config.json``'s ``chat_template`` (a named
    list picks ``default``); special tokens from ``special_tokens_map.json`` then ``tokenizer_config.json``."""
    from plugtron.data.chat_template import SPECIAL_TOKEN_KEYS

    special, template = {}, None
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as err:
            raise DataError(f"tokenizer.tokenizer_model: {path} is not a JSON object ({err})") from None
        if not isinstance(data, dict):
            raise DataError(f"tokenizer.tokenizer_model: {path} is not a JSON object")
        for key in SPECIAL_TOKEN_KEYS:
            value = data.get(key)
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str):
                special[key] = value
        found = data.get("chat_template")
        if isinstance(found, list):  # [{"name": ..., "template": ...}, ...]
            found = next((t.get("template") for t in found if isinstance(t, dict) and t.get("name") == "default"), None)
        if isinstance(found, str) and found:
            template = found
    jinja = os.path.join(directory, "chat_template.jinja")
    if os.path.isfile(jinja):
        with open(jinja, encoding="utf-8") as f:
            template = f.read()
    return template, special


class HuggingFaceTokenizer(_HFBacked):
    """A Hugging Face fast tokenizer from a local ``tokenizer.json`` or a directory holding one (a
    directory with only GPT-2 style ``vocab.json`` + ``merges.txt`` works too). EOD is the
    ``eos_token`` of ``tokenizer_config.json``, else the first known end token in the vocabulary."""

    def __init__(self, tokenizer_model: Optional[str]) -> None:
        key = "tokenizer.tokenizer_model"
        if not tokenizer_model:
            raise DataError(f"{key}: required for HuggingFaceTokenizer (a local tokenizer.json or a directory "
                            "holding one; hub names are not fetched)")
        path = os.path.abspath(os.path.expanduser(tokenizer_model))
        if os.path.isdir(path):
            directory, tj = path, os.path.join(path, "tokenizer.json")
            vocab, merges = os.path.join(path, "vocab.json"), os.path.join(path, "merges.txt")
            if os.path.isfile(tj):
                files = [tj]
            elif os.path.isfile(vocab) and os.path.isfile(merges):
                files = [vocab, merges]
            else:
                raise DataError(f"{key}: {path} holds neither tokenizer.json nor vocab.json + merges.txt")
        elif os.path.isfile(path):
            directory, files = os.path.dirname(path), [path]
        else:
            raise DataError(f"{key}: {path} not found (expected a local tokenizer.json or a directory holding one; "
                            "hub names are not fetched)")
        tk = _import("tokenizers", "HuggingFaceTokenizer")
        if len(files) == 2:
            tok = _gpt2_tokenizer(*files)
        else:
            try:
                tok = tk.Tokenizer.from_file(files[0])
            except Exception as err:
                raise DataError(f"{key}: cannot load {files[0]} as a Hugging Face tokenizer: {err}") from None
        configured = _hf_eos_name(directory)
        names = (configured,) if configured else _EOS_NAMES
        eod = next((tok.token_to_id(n) for n in names if tok.token_to_id(n) is not None), None)
        if eod is None:
            raise DataError(f"{key}: {path} has no end-of-document token (looked for {', '.join(names)}); "
                            "set eos_token in tokenizer_config.json")
        super().__init__(tok, eod, files)
        # What chat templates read (plugtron.data.chat_template); the template is part of the identity
        # so that packed data made with another template is never reused.
        self.chat_template, self.special_tokens = _hf_chat_info(directory)
        if self.chat_template:
            self.unique_identifiers["chat_template"] = hashlib.md5(
                self.chat_template.encode(), usedforsecurity=False).hexdigest()[:16]


class SentencePieceTokenizer(_FileBacked):
    """A SentencePiece ``.model``; EOD is the model's ``eos`` piece."""

    def __init__(self, tokenizer_model: Optional[str]) -> None:
        path = _require_file(tokenizer_model, "tokenizer.tokenizer_model", "SentencePiece .model file")
        spm = _import("sentencepiece", "SentencePieceTokenizer")
        try:
            self._sp = spm.SentencePieceProcessor(model_file=path)
        except Exception as err:
            raise DataError(f"tokenizer.tokenizer_model: cannot load {path} as a SentencePiece model: {err}") from None
        if int(self._sp.eos_id()) < 0:
            raise DataError(f"tokenizer.tokenizer_model: {path} defines no eos piece (trained with eos_id=-1); "
                            "SentencePieceTokenizer uses it as end-of-document")
        self._identify(self._sp.eos_id(), self._sp.get_piece_size(), [path])

    def tokenize(self, text: str) -> List[int]:
        return list(self._sp.encode(text, out_type=int))

    def tokenize_batch(self, texts: List[str]) -> List[List[int]]:
        return self._sp.encode(texts, out_type=int, num_threads=1)  # processes are the parallelism

    def detokenize(self, ids: Iterable[int]) -> str:
        return self._sp.decode([int(i) for i in ids if 0 <= int(i) < self._vocab_size and int(i) != self._eod])


# The registered tokenizer kinds (``tokenizer.tokenizer_type``; the ``plugtron.tokenizers`` group).
def gpt2_bpe(tok_cfg) -> GPT2BPETokenizer:
    """GPT-2 byte-level BPE from tokenizer.vocab_file + tokenizer.merge_file (needs `tokenizers`)."""
    return GPT2BPETokenizer(tok_cfg.vocab_file, tok_cfg.merge_file)


def hugging_face(tok_cfg) -> HuggingFaceTokenizer:
    """A local Hugging Face tokenizer directory or tokenizer.json (tokenizer.tokenizer_model)."""
    return HuggingFaceTokenizer(tok_cfg.tokenizer_model)


def sentence_piece(tok_cfg) -> SentencePieceTokenizer:
    """A SentencePiece model file (tokenizer.tokenizer_model; needs `sentencepiece`)."""
    return SentencePieceTokenizer(tok_cfg.tokenizer_model)
