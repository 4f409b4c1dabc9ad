"""Tokenizer files made on the spot for tests: nothing is downloaded.

- ``gpt2_files``: hand-written GPT-2 style ``vocab.json`` + ``merges.txt`` (the 256 byte symbols of
  GPT-2's byte-to-unicode map, a few merges, ``<|endoftext|>``), so expected ids are known exactly.
- ``train_bpe``: a tiny byte-level BPE trained with the ``tokenizers`` library, saved as a Hugging
  Face directory (``tokenizer.json`` + ``tokenizer_config.json`` naming ``</s>`` as eos).
- ``train_sentencepiece``: a tiny SentencePiece unigram ``.model``.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List

TEXT = [
    "the cat sat on the mat and the dog sat on the log",
    "a quick brown fox jumps over the lazy dog near the river bank",
    "tokenizers turn text into ids and ids back into the same text",
    "Grüße aus Köln: numbers 12345 and punctuation, too!",
] * 20


def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible map of the 256 byte values onto printable characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars)))


GPT2_MERGES = [("t", "h"), ("th", "e"), ("Ġ", "the"), ("a", "t"), ("Ġ", "c"), ("Ġc", "at")]


def gpt2_files(directory: str) -> Dict[str, object]:
    """Write ``vocab.json``/``merges.txt``; returns their paths and the vocabulary."""
    vocab: Dict[str, int] = {}
    for ch in sorted(bytes_to_unicode().values()):
        vocab[ch] = len(vocab)
    merges: List[tuple] = list(GPT2_MERGES)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<|endoftext|>"] = len(vocab)
    os.makedirs(directory, exist_ok=True)
    vocab_file, merge_file = os.path.join(directory, "vocab.json"), os.path.join(directory, "merges.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(merge_file, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return {"vocab_file": vocab_file, "merge_file": merge_file, "vocab": vocab}


def train_bpe(directory: str, vocab_size: int = 300, texts: List[str] = TEXT) -> str:
    """A byte-level BPE trained on ``texts``, saved as a Hugging Face tokenizer directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    os.makedirs(directory, exist_ok=True)
    tok.save(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "</s>"}, f)
    return directory


def train_sentencepiece(directory: str, vocab_size: int = 310, texts: List[str] = TEXT) -> str:
    """A tiny unigram SentencePiece model; identity normalization so text round-trips exactly."""
    import sentencepiece as spm

    os.makedirs(directory, exist_ok=True)
    prefix = os.path.join(directory, "sp")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_prefix=prefix, vocab_size=vocab_size, model_type="unigram",
        normalization_rule_name="identity", remove_extra_whitespaces=False, byte_fallback=True, character_coverage=1.0,
        minloglevel=2, num_threads=1)
    return prefix + ".model"
