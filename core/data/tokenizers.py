"""Tokenizers with the interface Megatron-Core's ``GPTDataset`` reads (torch-free).

``GPTDataset`` needs ``vocab_size`` (picks the token dtype), ``eod`` (loss mask and position/attention
resets) and ``unique_identifiers``: an OrderedDict that Megatron JSON-serialises into the hash naming
the cached sample indices, so two tokenizers that tokenize differently must differ in it.

Neither tokenizer defines ``pad``: Megatron then pads with -1, an id no token can have, and masks those
positions out of the loss. Reusing EOD as pad would make Megatron warn and mask nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, List

from plugtron.config.data import TokenizerConfig
from plugtron.errors import DataError


class ByteLevelTokenizer:
    """Ids 0..255 are the UTF-8 bytes of the text; 256 is end-of-document. Needs no file."""

    EOD = 256

    def __init__(self) -> None:
        self.unique_identifiers = OrderedDict(
            [("class", type(self).__name__), ("vocab_size", self.vocab_size)]
        )

    @property
    def vocab_size(self) -> int:
        return 257

    @property
    def eod(self) -> int:
        return self.EOD

    def tokenize(self, text: str) -> List[int]:
        return list(text.encode("utf-8"))

    def detokenize(self, ids: Iterable[int]) -> str:
        # EOD (and anything out of byte range, e.g. Megatron's -1 padding) has no text: drop it.
        # A micro batch may cut a multi-byte character in half, hence errors="replace".
        data = bytes(int(i) for i in ids if 0 <= int(i) < 256)
        return data.decode("utf-8", errors="replace")


class NullTokenizer:
    """Text is space-separated integer ids below ``vocab_size``; EOD is one extra id at the end.

    Same convention as Megatron-LM's ``NullTokenizer``: the model's vocabulary is ``vocab_size + 1``.
    """

    def __init__(self, vocab_size: int) -> None:
        self._base = int(vocab_size)
        self.unique_identifiers = OrderedDict(
            [("class", type(self).__name__), ("vocab_size", self.vocab_size)]
        )

    @property
    def vocab_size(self) -> int:
        return self._base + 1

    @property
    def eod(self) -> int:
        return self._base

    def tokenize(self, text: str) -> List[int]:
        ids = []
        for word in text.split():
            try:
                i = int(word)
            except ValueError:
                raise DataError(
                    f"NullTokenizer: {word!r} is not an integer id (text must be space-separated ints)"
                ) from None
            if not 0 <= i < self._base:
                raise DataError(
                    f"NullTokenizer: id {i} is outside [0, {self._base}) (tokenizer.vocab_size={self._base})"
                )
            ids.append(i)
        return ids

    def detokenize(self, ids: Iterable[int]) -> str:
        return " ".join(str(int(i)) for i in ids)


def byte_level(tok_cfg: TokenizerConfig) -> ByteLevelTokenizer:
    """UTF-8 bytes as ids (256) plus an end-of-document id: no files, any text."""
    return ByteLevelTokenizer()


def null_tokenizer(tok_cfg: TokenizerConfig) -> NullTokenizer:
    """Text that already is space-separated integer ids below tokenizer.vocab_size."""
    if tok_cfg.vocab_size is None or tok_cfg.vocab_size < 1:
        raise DataError(
            f"tokenizer.vocab_size: NullTokenizer needs a positive vocab_size, got {tok_cfg.vocab_size!r}"
        )
    return NullTokenizer(tok_cfg.vocab_size)


def build_tokenizer(tok_cfg: TokenizerConfig):
    """The tokenizer named by ``tokenizer.tokenizer_type``: a function ``TokenizerConfig -> tokenizer``
    registered in the entry-point group ``plugtron.tokenizers``; file-backed ones load local files only."""
    from plugtron import registry

    return registry.load("tokenizer", tok_cfg.tokenizer_type, "tokenizer.tokenizer_type")(tok_cfg)
