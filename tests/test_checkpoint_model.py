"""A checkpoint brings its model: ``checkpoint.pretrained_checkpoint`` / ``checkpoint.load`` with no
model fields take the architecture from the checkpoint's run_config.yaml; a contradicting field is
one error naming both values; recipe and user still decide the run settings (parallelism, length)."""

import pytest
import yaml

from plugtron.config import load_config
from plugtron.errors import ConfigError

from _hf_models import build, save

STEPS = ["train.train_iters=3", "train.eval_interval=null", "train.global_batch_size=8", "train.micro_batch_size=4",
         "optimizer.lr=3e-3", "scheduler.lr_warmup_iters=0", "logger.log_interval=1"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from plugtron.providers.hf import AutoBridge

    tmp = tmp_path_factory.mktemp("hf")
    hf = save(build("qwen2", vocab=257, positions=128), tmp / "hf")
    AutoBridge.import_ckpt(str(hf), str(tmp / "ckpt"))
    model = yaml.safe_load((tmp / "ckpt" / "iter_0000000" / "run_config.yaml").read_text())["model"]
    return tmp / "ckpt", model


def test_sft_from_an_imported_model_needs_no_model_field(imported, tmp_path):
    from plugtron.training import train

    ckpt, model = imported
    cfg = load_config(None, STEPS + [f"checkpoint.pretrained_checkpoint={ckpt}", f"checkpoint.save={tmp_path / 'out'}"],
                      recipe="tiny_llama")
    m = cfg.model
    assert (m.num_layers, m.hidden_size, m.ffn_hidden_size, m.num_query_groups) == (2, 64, 96, 2)
    assert (m.add_qkv_bias, m.share_embeddings_and_output_weights, m.rotary_base) == (True, True, model["rotary_base"])
    assert m.seq_length == 128 and m.transformer_impl == "local"  # the recipe's run settings stay
    summary = train(cfg)  # the weights load into the architecture they were saved from
    assert len(summary["losses"]) == 3


def test_a_contradicting_field_names_both_values(imported, tmp_path):
    ckpt, _ = imported
    y = tmp_path / "c.yaml"
    y.write_text("model:\n  num_layers: 4\n  hidden_size: 64\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(y), [f"checkpoint.pretrained_checkpoint={ckpt}", "model.normalization=LayerNorm"])
    text = str(info.value)
    assert "model.num_layers: 4 (" + str(y) + ") contradicts the checkpoint's 2 (" in text
    assert "model.normalization: 'LayerNorm' (command line) contradicts the checkpoint's 'RMSNorm'" in text
    assert "hidden_size" not in text  # the same value is no contradiction
    assert "run_config.yaml, from checkpoint.pretrained_checkpoint); leave it out" in text


def test_parallelism_and_length_stay_the_users(imported):
    ckpt, _ = imported
    cfg = load_config(None, [f"checkpoint.pretrained_checkpoint={ckpt}", "model.tensor_model_parallel_size=2",
                             "model.seq_length=64"]).validate(2)
    assert (cfg.model.tensor_model_parallel_size, cfg.model.seq_length, cfg.dataset.sequence_length) == (2, 64, 64)
    assert cfg.model.hidden_size == 64


def test_resume_takes_the_saved_model_and_an_empty_load_changes_nothing(tmp_path):
    from plugtron.training import train

    small = ["model.num_layers=2", "model.hidden_size=64", "model.num_attention_heads=2"]
    train(load_config(None, STEPS + small + [f"checkpoint.save={tmp_path / 'run'}"]))
    cfg = load_config(None, STEPS + [f"checkpoint.load={tmp_path / 'run'}", "train.train_iters=4"])
    assert (cfg.model.num_layers, cfg.model.hidden_size, cfg.model.num_attention_heads) == (2, 64, 2)
    (tmp_path / "empty").mkdir()
    fresh = load_config(None, [f"checkpoint.load={tmp_path / 'empty'}"])
    assert (fresh.model.num_layers, fresh.model.hidden_size) == (4, 128)  # the tiny recipe's
