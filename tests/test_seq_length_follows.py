"""Sequence length follows the model it trains (issue 29, points 4 and 6): a PEFT recipe (4096,
packed) applied to an imported model with 128 positions trains at 128, packing included; a length
the user sets longer than the model allows is one error naming both; ``model.seq_length`` alone
moves the packing size; the start line shows the sequence length and tokens per step."""

import logging

import pytest

from _hf_models import build, save
from plugtron.config import load_config
from plugtron.errors import ConfigError

RECIPE = "llama32_1b_peft"  # seq 4096, packed 4096-token rows


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from plugtron.providers.hf import AutoBridge
    from test_sft import write_root

    root = tmp_path_factory.mktemp("seqlen")
    save(build("llama", positions=128), root / "hf")
    AutoBridge.import_ckpt(str(root / "hf"), str(root / "base"))
    write_root(root / "data")
    return root


def _cfg(base, *extra):
    return load_config(None, [f"checkpoint.pretrained_checkpoint={base / 'base'}",
                              f"dataset.dataset_root={base / 'data'}", *extra], recipe=RECIPE)


def test_recipe_length_is_cut_to_the_model_packing_included(base):
    cfg = _cfg(base)
    assert cfg.model.seq_length == 128 and cfg.dataset.packed_sequence_specs.packed_sequence_size == 128
    # a note the run logs at its start (not config show: its stdout stays YAML)
    assert any(n.startswith("model.seq_length: 128, the max_position_embeddings of checkpoint.pretrained_checkpoint's "
                            "model") for n in cfg.notes), cfg.notes
    cfg.validate(1)
    assert cfg.dataset.seq_length == 128


def test_a_user_length_longer_than_the_model_is_refused_naming_both(base):
    with pytest.raises(ConfigError) as err:
        _cfg(base, "model.seq_length=4096")
    text = str(err.value)
    assert "model.seq_length: 4096 (command line) is longer than the model of checkpoint.pretrained_checkpoint " \
           "allows: max_position_embeddings 128" in text and "set model.seq_length to at most 128" in text


def test_model_seq_length_alone_moves_the_packing_size(base):
    cfg = _cfg(base, "model.seq_length=64")
    cfg.validate(1)
    assert (cfg.model.seq_length, cfg.dataset.seq_length, cfg.dataset.packed_sequence_specs.packed_sequence_size) == \
        (64, 64, 64)
    # a packing size the user sets stays theirs, and a contradiction is named
    cfg = _cfg(base, "model.seq_length=64", "dataset.packed_sequence_specs.packed_sequence_size=32")
    with pytest.raises(ConfigError, match="packed_sequence_size: 32 differs from dataset.seq_length 64"):
        cfg.validate(1)


def test_start_line_shows_seq_length_and_tokens_per_step(tmp_path, caplog):
    from helpers import SMALL
    from plugtron.training import train

    with caplog.at_level(logging.INFO, logger="plugtron"):
        train(load_config(None, SMALL + ["train.train_iters=2", "train.eval_interval=null", "checkpoint.save=null"]))
    assert "| seq length 64, 512 tokens per step" in caplog.text  # global batch 8 x 64, nothing padded
