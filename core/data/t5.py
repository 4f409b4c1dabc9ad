"""T5 span corruption over the samples of the pretraining pipeline.

Each sample of the wrapped dataset (a Megatron ``GPTDataset``, ``BlendedDataset`` or the mock one:
same tokenizer, blend, split and shuffle as GPT training) is ``raw_length(seq_length)`` tokens of
text: as many as fill the encoder's ``seq_length`` once the noise spans became sentinels. T5's
objective turns it into an encoder input and decoder targets:

    text     a b c d e f g h i j
    encoder  a b <s0> e f g <s1> j           noise spans replaced by one sentinel each
    labels   <s0> c d <s1> h i <eod>         each sentinel, then the tokens it hides; EOD ends
    decoder  <eod> <s0> c d <s1> h i         the labels shifted right (EOD doubles as start token)

About ``noise_density`` of the tokens are noise, in spans of mean length ``mean_noise_span_length``
(T5's ``random_spans_noise_mask``: noise and kept tokens are each cut into ``num_spans`` random
positive parts, interleaved kept-first). The randomness comes from a generator seeded by
``(seed, sample index)`` only, so a sample is the same whichever rank, step or resumed run draws
it, and the data order stays a function of the seed and the consumed samples.

Sentinel ``k`` is id ``tokenizer.vocab_size + k``: ids the tokenizer never produces, appended to
the model's vocabulary (``model.vocab_size`` includes ``num_sentinel_tokens`` of them).
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy
import torch

from plugtron.errors import DataError


def span_counts(length: int, noise_density: float, mean_noise_span_length: float) -> Tuple[int, int]:
    """``(noise tokens, noise spans)`` for a text of ``length`` tokens (T5's rounding). At least one
    token stays and one is noise, so every sample has something to predict and something to read."""
    if length < 2:
        return 0, 0
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
    return num_noise, min(num_spans, length - num_noise)  # each span needs a kept token before it


def target_length(length: int, noise_density: float, mean_noise_span_length: float) -> int:
    """Decoder tokens the span-corruption of ``length`` tokens needs: sentinels + noise + EOD."""
    noise, spans = span_counts(length, noise_density, mean_noise_span_length)
    return noise + spans + 1


def raw_length(enc_len: int, noise_density: float, mean_noise_span_length: float) -> int:
    """The longest text whose span-corrupted encoder input (kept tokens + one sentinel per span) fits
    ``enc_len``, as T5 sizes its inputs: the encoder is then full, not padded. The encoder length
    grows by 0 or 1 per extra text token, so every shorter text fits too."""
    length = enc_len
    while True:
        noise, spans = span_counts(length + 1, noise_density, mean_noise_span_length)
        if length + 1 - noise + spans > enc_len:
            return length
        length += 1


def _random_parts(rng: numpy.random.Generator, total: int, parts: int) -> numpy.ndarray:
    """``total`` cut into ``parts`` random positive integers (distinct cut points, sorted)."""
    cuts = numpy.sort(rng.choice(numpy.arange(1, total), size=parts - 1, replace=False)) if parts > 1 else []
    return numpy.diff(numpy.concatenate([[0], cuts, [total]])).astype(numpy.int64)


def corrupt(text: numpy.ndarray, rng: numpy.random.Generator, sentinel0: int, eod: int, noise_density: float,
            mean_noise_span_length: float) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """``(encoder ids, label ids)`` of one text (see the module docstring); unpadded."""
    num_noise, num_spans = span_counts(len(text), noise_density, mean_noise_span_length)
    if num_spans == 0:
        return numpy.asarray(text, dtype=numpy.int64), numpy.array([eod], dtype=numpy.int64)
    keep = _random_parts(rng, len(text) - num_noise, num_spans)
    noise = _random_parts(rng, num_noise, num_spans)
    enc, lab, pos = [], [], 0
    for k in range(num_spans):
        enc.append(text[pos:pos + keep[k]])
        pos += keep[k]
        enc.append([sentinel0 + k])
        lab.append([sentinel0 + k])
        lab.append(text[pos:pos + noise[k]])
        pos += noise[k]
    lab.append([eod])
    return (numpy.concatenate(enc).astype(numpy.int64), numpy.concatenate(lab).astype(numpy.int64))


class SpanCorruptionDataset:
    """Span-corrupted view of a pretraining dataset, one T5 sample per wrapped sample.

    A sample is a dict of fixed-length arrays: ``text_enc`` [enc_len] and ``enc_valid`` (False on
    padding), ``text_dec``/``labels``/``loss_mask`` [dec_len]. Padding uses EOD; padded encoder
    positions are masked out of attention, padded decoder positions out of the loss (the decoder's
    causal mask already keeps them from earlier positions)."""

    def __init__(self, base, tokenizer_vocab_size: int, eod: int, enc_len: int, dec_len: int, seed: int,
                 num_sentinel_tokens: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> None:
        self.base, self.eod, self.seed = base, int(eod), int(seed)
        self.sentinel0 = int(tokenizer_vocab_size)
        self.enc_len, self.dec_len = int(enc_len), int(dec_len)
        self.noise_density, self.mean_span = float(noise_density), float(mean_noise_span_length)
        self.num_sentinel_tokens = int(num_sentinel_tokens)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, idx: int) -> Dict[str, numpy.ndarray]:
        idx = int(idx)
        tokens = numpy.asarray(self.base[idx]["tokens"], dtype=numpy.int64)
        text = tokens[tokens >= 0]  # Megatron pads a short last sample with -1
        rng = numpy.random.default_rng([self.seed, idx])
        enc, lab = corrupt(text, rng, self.sentinel0, self.eod, self.noise_density, self.mean_span)
        if len(enc) > self.enc_len:
            raise DataError(f"sample {idx}: {len(text)} tokens corrupt to {len(enc)} encoder tokens, more than "
                            f"model.seq_length {self.enc_len}; the wrapped dataset's samples must be at most "
                            f"{raw_length(self.enc_len, self.noise_density, self.mean_span)} tokens")
        if lab[:-1].size and lab[:-1].max(initial=0) >= self.sentinel0 + self.num_sentinel_tokens:
            raise DataError(f"sample {idx}: needs more than model.num_sentinel_tokens={self.num_sentinel_tokens} "
                            "sentinels; raise it or lower noise_density")
        if len(lab) > self.dec_len:
            raise DataError(f"sample {idx}: span-corruption targets need {len(lab)} decoder tokens, "
                            f"model.seq_length_dec is {self.dec_len}")
        dec_in = numpy.concatenate([[self.eod], lab[:-1]])
        out = {
            "text_enc": numpy.full(self.enc_len, self.eod, dtype=numpy.int64),
            "enc_valid": numpy.zeros(self.enc_len, dtype=bool),
            "text_dec": numpy.full(self.dec_len, self.eod, dtype=numpy.int64),
            "labels": numpy.full(self.dec_len, self.eod, dtype=numpy.int64),
            "loss_mask": numpy.zeros(self.dec_len, dtype=numpy.float32),
        }
        out["text_enc"][: len(enc)], out["enc_valid"][: len(enc)] = enc, True
        out["text_dec"][: len(dec_in)], out["labels"][: len(lab)], out["loss_mask"][: len(lab)] = dec_in, lab, 1.0
        return out


def collate_t5(samples: Sequence[Dict]) -> Dict[str, torch.Tensor]:
    """Stack T5 samples into a micro batch with the masks ``T5Model.forward`` takes
    ([b, 1, q, k] bool, True = masked out): the encoder's self-attention and the decoder's
    cross-attention both hide padded encoder positions. The decoder's self-attention mask is
    left to the model (causal). ``real_tokens`` [b]: each row's non-padding encoder and decoder
    positions, counted by the step as "tokens seen" (``T5Kind.positions`` is their sum with padding)."""
    batch = {k: torch.as_tensor(numpy.stack([s[k] for s in samples])) for k in samples[0]}
    valid = batch.pop("enc_valid")  # [b, se]
    # each row's real tokens: encoder input + decoder input (as long as the targets), padding apart
    batch["real_tokens"] = valid.sum(1) + (batch["loss_mask"] > 0).sum(1)
    pad = ~valid
    b, se = pad.shape
    sd = batch["text_dec"].shape[1]
    batch["enc_mask"] = pad[:, None, None, :].expand(b, 1, se, se).contiguous()
    batch["enc_dec_mask"] = pad[:, None, None, :].expand(b, 1, sd, se).contiguous()
    return batch
