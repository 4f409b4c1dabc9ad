"""Issue 29: "tokens seen" and tokens/s count real tokens; SFT padding is reported apart.

A tiny in-process SFT run on short examples padded to seq_length: the run summary's count equals
the summed lengths of the examples the run consumed (read from the dataset's rows, not from the
padded samples), the padding is the rest of the positions, and the log records agree.
Pretraining's unchanged numbers are checked in test_run_summary.py."""

import json
import logging

import pytest

from plugtron.config import FinetuningDatasetConfig, PackedSequenceSpecs, TokenizerConfig, load_config
from plugtron.data import build_datasets, build_tokenizer
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from test_sft import SEQ, write_root

ITERS, GBS = 3, 4


def _cfg(root, packed):
    cfg = load_config(None, ["model.num_layers=2", "model.hidden_size=64", f"model.seq_length={SEQ}",
                             "train.micro_batch_size=2" if not packed else "train.micro_batch_size=1",
                             f"train.global_batch_size={GBS}", f"train.train_iters={ITERS}",
                             "scheduler.lr_warmup_iters=1", "logger.log_interval=2"])
    cfg.dataset = FinetuningDatasetConfig(
        dataset_root=root, seq_length=SEQ, do_validation=False, do_test=False,
        packed_sequence_specs=PackedSequenceSpecs(packed_sequence_size=SEQ) if packed else None)
    return cfg


def _consumed_lengths(root, packed) -> int:
    """Positions the consumed examples fill: each example of n ids is n - 1 (input, label) pairs."""
    train_ds = build_datasets(_cfg(root, packed), build_tokenizer(TokenizerConfig()))[0]
    rows = [train_ds.get_row(train_ds.row_index(i)) for i in range(ITERS * GBS)]
    return sum(len(ids) - 1 for row in rows for ids, _answer in row)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_tokens_seen_counts_real_tokens_and_padding_apart(tmp_path, caplog, packed):
    root = write_root(tmp_path / "d", n=(30, 0, 0))
    cfg = _cfg(root, packed)
    cfg.logger.metrics_dir = str(tmp_path / "m")
    pm = PluginManager()
    with caplog.at_level(logging.INFO, logger="plugtron"):
        train(cfg, plugin_manager=pm)

    real = _consumed_lengths(root, packed)
    positions = ITERS * GBS * SEQ
    assert 0 < real < (positions if packed else positions / 2)  # padded: most positions are padding
    summary = pm.loaded["run_summary"].text
    assert f"tokens seen in this run: {real:,} (+ {positions - real:,} padding, not counted)" in summary

    records = [json.loads(line) for line in open(tmp_path / "m" / "metrics.jsonl")]
    train_recs = [r for r in records if "tokens_per_sec" in r]
    assert [r["iteration"] for r in train_recs] == [2, 3]
    assert sum(r["tokens"] for r in train_recs) == real
    assert sum(r["tokens"] + r["padding_tokens"] for r in train_recs) == positions
    for r, steps in zip(train_recs, (2, 1)):  # tokens/s: the window's real tokens over its time
        assert r["tokens_per_sec"] == pytest.approx(r["tokens"] / (r["step_time_s"] * steps), rel=1e-6)
    assert "% padding excluded)" in caplog.text
    # the start line cannot know the real tokens yet: it says positions
    assert f"seq length {SEQ}, {GBS * SEQ:,} positions per step (padding included" in caplog.text
