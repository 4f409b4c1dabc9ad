"""T5 through `plugtron train`: span-corruption data over the pretraining pipeline, Megatron's
schedules, DDP, optimizer, evaluation and checkpoint resume (CPU, tiny config)."""

import logging
import re

import numpy
import pytest
import torch

from plugtron.config import load_config
from plugtron.data.t5 import SpanCorruptionDataset, collate_t5, raw_length, span_counts
from plugtron.errors import ConfigError
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from helpers import WeightsDigest, torchrun_runs

T5 = ["model.provider=t5", "model.num_layers=2", "model.hidden_size=64", "model.num_attention_heads=4",
      "model.ffn_hidden_size=128", "model.seq_length=64", "dataset.sequence_length=64", "model.seq_length_dec=32",
      "model.hidden_dropout=0.0", "model.attention_dropout=0.0", "model.make_vocab_size_divisible_by=8",
      "train.micro_batch_size=4", "train.global_batch_size=8", "optimizer.lr=3e-3", "scheduler.lr_warmup_iters=2",
      "logger.log_interval=5"]

EOD, VOCAB = 256, 257  # ByteLevelTokenizer


class _Texts:
    """A stand-in for a GPTDataset: sample i is 71 random byte ids (EOD-free) seeded by i; the last
    one holds 40 tokens and Megatron's -1 padding (a short final sample)."""

    def __init__(self, n=200, length=71):
        self.rows = [numpy.random.default_rng(i).integers(0, 256, length) for i in range(n)]
        self.rows[-1][40:] = -1

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"tokens": self.rows[i], "labels": self.rows[i]}


def _dataset(base, seed=1234):
    return SpanCorruptionDataset(base, VOCAB, EOD, enc_len=64, dec_len=32, seed=seed, num_sentinel_tokens=100)


def _reconstruct(enc, labels):
    """Original text from the encoder input and the labels: each sentinel in the encoder is replaced
    by the tokens that follow the same sentinel in the labels."""
    spans, cur = {}, None
    for t in labels:
        if t >= VOCAB:
            cur = spans.setdefault(int(t), [])
        elif t == EOD:
            break
        else:
            cur.append(int(t))
    out = []
    for t in enc:
        out.extend(spans[int(t)] if t >= VOCAB else [int(t)])
    return out


def test_span_corruption_is_right_and_deterministic_per_sample_index():
    base = _Texts()
    ds = _dataset(base)
    assert raw_length(64, 0.15, 3.0) == 71  # the text that fills a 64-token encoder (T5: 568 for 512)
    noise, spans = span_counts(71, 0.15, 3.0)
    assert (noise, spans) == (11, 4)
    span_lengths = []
    for i in range(len(ds)):
        s = ds[i]
        n_enc, n_lab = int(s["enc_valid"].sum()), int(s["loss_mask"].sum())
        text = [t for t in base[i]["tokens"].tolist() if t >= 0]
        noise, spans = span_counts(len(text), 0.15, 3.0)
        assert n_enc == len(text) - noise + spans and n_lab == noise + spans + 1  # sentinels + noise + EOD
        assert n_enc == (64 if i < len(ds) - 1 else 36)  # full encoder; the short sample is padded
        enc, lab = s["text_enc"][:n_enc], s["labels"][:n_lab]
        assert _reconstruct(enc, lab) == text
        sentinels = [t for t in lab if t >= VOCAB]
        assert sentinels == list(range(VOCAB, VOCAB + spans)) == [t for t in enc if t >= VOCAB]
        assert lab[-1] == EOD and s["text_dec"][0] == EOD  # EOD ends the targets and starts the decoder
        assert numpy.array_equal(s["text_dec"][1:n_lab], lab[:-1])  # decoder input = labels shifted right
        assert not s["enc_valid"][n_enc:].any() and not s["loss_mask"][n_lab:].any()
        bounds = [k for k, t in enumerate(lab) if t >= VOCAB] + [n_lab - 1]
        span_lengths += [b - a - 1 for a, b in zip(bounds, bounds[1:])]
    assert min(span_lengths) >= 1 and 2.5 < numpy.mean(span_lengths) < 3.5
    # A function of (seed, sample index) only: another instance, any order, same samples.
    again = _dataset(base)
    for i in (7, 3, 7, 150):
        assert all(numpy.array_equal(ds[i][k], again[i][k]) for k in ds[i])
    assert not numpy.array_equal(ds[3]["labels"], ds[4]["labels"])
    assert not numpy.array_equal(ds[3]["labels"], _dataset(base, seed=1)[3]["labels"])
    batch = collate_t5([ds[0], ds[199]])
    assert batch["enc_mask"].shape == (2, 1, 64, 64) and batch["enc_dec_mask"].shape == (2, 1, 32, 64)
    assert not batch["enc_mask"][0].any()  # True = masked: only padded keys, in every query row
    assert batch["enc_mask"][1, 0, 5].tolist() == batch["enc_dec_mask"][1, 0, 7].tolist() == [False] * 36 + [True] * 28
    short = int(ds[199]["loss_mask"].sum())
    assert batch["real_tokens"].tolist() == [64 + 11 + 4 + 1, 36 + short]  # encoder + decoder (noise, sentinels, EOD)


def test_plugtron_train_trains_t5_and_the_loss_falls(caplog):
    from plugtron.cli import main

    with caplog.at_level(logging.INFO, logger="plugtron"):
        rc = main(["train", *T5, "train.train_iters=30", "train.eval_interval=15", "train.eval_iters=1"])
    assert rc == 0
    text = caplog.text
    losses = [float(x) for x in re.findall(r"iter +\d+/30 \| loss ([0-9.]+)", text)]
    valid = [float(x) for x in re.findall(r"valid at iter \d+: loss ([0-9.]+)", text)]
    assert len(losses) == 6 and len(valid) == 2, text[-2000:]
    # Uniform over the 264-id vocabulary is ln(264) = 5.6; 30 steps bring the 5-step mean clearly down.
    assert losses[0] > 5.0 and losses[-1] < 0.75 * losses[0], losses
    assert valid[1] < valid[0], valid
    # tokens seen: the real encoder and decoder tokens; the decoder's padding (32 positions for 16
    # targets: noise + sentinels + EOD of a 71-token text) is reported apart
    noise, spans = span_counts(raw_length(64, 0.15, 3.0), 0.15, 3.0)
    real, positions = 30 * 8 * (64 + noise + spans + 1), 30 * 8 * (64 + 32)
    assert "seq length 64 (decoder 32), 768 positions per step (padding included" in text
    assert f"tokens seen in this run: {real:,} (+ {positions - real:,} padding, not counted)" in text, text[-1500:]


def test_t5_resume_is_bit_identical(tmp_path):
    """6 steps straight vs 3 steps, stop, resume for 3: same per-step losses and final weights."""

    def run(overrides):
        pm, digest = PluginManager(), WeightsDigest()
        pm.register("weightsdigest", digest)
        cfg = load_config(None, T5 + ["train.train_iters=6", "train.eval_interval=null"] + overrides)
        return train(cfg, plugin_manager=pm), digest.value

    ref, ref_digest = run([])
    ck = [f"checkpoint.save={tmp_path}", f"checkpoint.load={tmp_path}"]
    first, _ = run(ck + ["train.exit_interval=3"])
    assert first["iteration"] == 3
    second, digest = run(ck)
    assert second["consumed_train_samples"] == 6 * 8
    assert first["losses"] + second["losses"] == ref["losses"]  # exact float equality
    assert digest == ref_digest


def test_t5_config_derivations_and_limits():
    cfg = load_config(None, T5).validate()
    assert cfg.model.vocab_size == VOCAB + 100  # the sentinels above the tokenizer's ids
    with pytest.raises(ConfigError, match="T5 trains without pipeline parallelism"):
        load_config(None, T5 + ["model.pipeline_model_parallel_size=2"]).validate(world_size=2)
    with pytest.raises(ConfigError, match=r"seq_length_dec: 8 is too short .*71 text tokens.* set it to >= 16"):
        load_config(None, T5 + ["model.seq_length_dec=8"]).validate()
    with pytest.raises(ConfigError, match="num_sentinel_tokens: 2, but"):
        load_config(None, T5 + ["model.num_sentinel_tokens=2"]).validate()
    with pytest.raises(ConfigError, match="noise_density: expected a value in"):
        load_config(None, T5 + ["model.noise_density=0"]).validate()
    from plugtron.config.data import FinetuningDatasetConfig

    cfg = load_config(None, T5)
    cfg.dataset = FinetuningDatasetConfig(dataset_root="/nonexistent", seq_length=64)
    with pytest.raises(ConfigError, match="SFT datasets and packing are not supported for T5"):
        cfg.validate()


def test_t5_explicit_vocab_without_room_for_sentinels_is_a_clear_error():
    cfg = load_config(None, T5 + ["model.vocab_size=300", "train.train_iters=3", "train.eval_interval=null"])
    # validate() (run first by train, and by config show) knows the tokenizer's size and T5's extra ids
    with pytest.raises(ConfigError, match=r"model.vocab_size: 300 is smaller than the tokenizer's 257 ids \+ 100 extra ids"):
        train(cfg)


T5_TWO = T5 + ["train.train_iters=4", "train.eval_interval=null", "model.use_cpu_initialization=true"]
T5_LAYOUTS = {"tp2": ["model.tensor_model_parallel_size=2"],  # vocab padded to a multiple of 8 x 2
              "dp2": ["model.make_vocab_size_divisible_by=16"]}


@pytest.fixture(scope="module")
def t5_two_process(tmp_path_factory):
    """The single-process run, and both layouts' runs in one two-process launch."""
    ref = train(load_config(None, T5_TWO + ["model.make_vocab_size_divisible_by=16"]))
    got = torchrun_runs(tmp_path_factory.mktemp("t5"), "t5", [T5_TWO + two for two in T5_LAYOUTS.values()])
    return ref, dict(zip(T5_LAYOUTS, got))


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(T5_LAYOUTS))
def test_t5_two_process_layouts_follow_the_single_process_run(t5_two_process, layout):
    """TP=2 or DP=2 on two gloo processes: the same global batches and the same initial weights
    (CPU initialization draws full tensors, then shards; the padded vocabulary is the same 368
    rows), so the per-step losses follow the single-process run."""
    ref, summary = t5_two_process[0], t5_two_process[1][layout]
    assert summary["losses"] == pytest.approx(ref["losses"], rel=1e-4), (summary["losses"], ref["losses"])
