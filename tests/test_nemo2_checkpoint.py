"""A NeMo 2.0 checkpoint directory (weights/ + context/, built as NeMo writes it) loads as
``checkpoint.pretrained_checkpoint`` with the logits of the model it was written from; its
context/model.yaml is read as data only, and what does not fit is named."""

import os

import pytest
import torch
import yaml

import _nemo2_fixture
from plugtron.checkpointing.contents import unwrap
from plugtron.config import load_config
from plugtron.errors import CheckpointError
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

LLAMA = ["model.provider=llama3", "model.num_layers=2", "model.hidden_size=64", "model.ffn_hidden_size=128",
         "model.num_attention_heads=4", "model.num_query_groups=2", "model.seq_length=32", "model.vocab_size=null",
         "model.make_vocab_size_divisible_by=64", "dataset.sequence_length=32", "train.micro_batch_size=2",
         "train.global_batch_size=4", "train.train_iters=1", "scheduler.lr_warmup_iters=0", "train.eval_interval=null", "train.skip_train=true"]
TOKENS = torch.arange(2 * 32).reshape(2, 32) % 257


def logits(state):
    model = unwrap(state.model[0])
    model.eval()
    with torch.no_grad():
        return model(TOKENS, torch.arange(32).expand_as(TOKENS), None).detach().clone()


class Probe:
    """After the load (on_train_start): the model's logits; optionally writes it as a NeMo 2.0 checkpoint."""

    def __init__(self, write_to=None, **changes):
        self.write_to, self.changes, self.logits = write_to, changes, None

    def on_train_start(self, state):
        self.logits = logits(state)
        if self.write_to:
            _nemo2_fixture.write(self.write_to, unwrap(state.model[0]), state.config.model, **self.changes)


def run(overrides, probe):
    pm = PluginManager()
    pm.register("probe", probe)
    train(load_config(None, LLAMA + overrides), plugin_manager=pm)
    return probe.logits


@pytest.fixture(scope="module")
def nemo_ckpt(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("nemo2") / "step=4-last")
    original = run(["rng.seed=7"], Probe(write_to=out))
    return out, original


def test_layout_is_nemos(nemo_ckpt):
    path, _ = nemo_ckpt
    assert os.path.isfile(os.path.join(path, "weights", ".metadata"))
    assert os.path.isfile(os.path.join(path, "context", "io.json"))
    model = yaml.safe_load(open(os.path.join(path, "context", "model.yaml")))
    assert model["config"]["_target_"] == "nemo.collections.llm.gpt.model.llama.Llama3Config"
    from megatron.core.dist_checkpointing import load_tensors_metadata

    keys = list(load_tensors_metadata(os.path.join(path, "weights")))
    assert keys and all(k.startswith("module.") for k in keys), keys[:3]
    assert "module.decoder.layers.self_attention.linear_qkv.weight" in keys


def test_pretrained_nemo2_checkpoint_gives_the_same_logits(nemo_ckpt):
    path, original = nemo_ckpt
    fresh = run(["rng.seed=99"], Probe())
    loaded = run(["rng.seed=99", f"checkpoint.pretrained_checkpoint={path}"], Probe())
    assert (fresh - original).abs().max() > 1e-2  # another seed: loading is what makes them equal
    assert torch.equal(loaded, original)


def test_context_is_read_as_data_and_mismatches_are_named(nemo_ckpt, tmp_path):
    from plugtron.migrate.nemo2_checkpoint import provider_from_checkpoint, read_model_config

    path, _ = nemo_ckpt
    name, fields = read_model_config(path)
    assert name == "llama3" and fields["num_layers"] == 2 and fields["params_dtype"] == "float32"
    assert fields["activation_func"] == "silu"
    provider = provider_from_checkpoint(path)
    assert (provider.num_layers, provider.hidden_size, provider.num_query_groups) == (2, 64, 2)
    with pytest.raises(CheckpointError, match=r"word_embeddings has 320 rows \(the padded vocabulary\), this model 384"):
        train(load_config(None, LLAMA + ["model.make_vocab_size_divisible_by=128", f"checkpoint.pretrained_checkpoint={path}"]))
    with pytest.raises(CheckpointError, match=r"num_layers: checkpoint 2, model section 3.*hidden_size"):
        train(load_config(None, LLAMA + ["model.num_layers=3", "model.hidden_size=128",
                                         f"checkpoint.pretrained_checkpoint={path}"]))


def _copy_with_context(src, dst, edit):
    import shutil

    shutil.copytree(src, dst)
    file = os.path.join(dst, "context", "model.yaml")
    data = yaml.safe_load(open(file))
    edit(data)
    yaml.safe_dump(data, open(file, "w"))
    return str(dst)


def test_unsupported_and_broken_contexts_are_named(nemo_ckpt, tmp_path):
    path, _ = nemo_ckpt
    bert = _copy_with_context(path, tmp_path / "bert", lambda d: d["config"].update(_target_="nemo.collections.llm.BertConfig"))
    with pytest.raises(CheckpointError, match=r"model\.yaml: model config nemo.collections.llm.BertConfig is not supported"):
        train(load_config(None, LLAMA + [f"checkpoint.pretrained_checkpoint={bert}"]))
    gone = _copy_with_context(path, tmp_path / "gone", lambda d: None)
    os.remove(os.path.join(gone, "context", "model.yaml"))
    with pytest.raises(CheckpointError, match=r"context/model\.yaml: missing"):
        train(load_config(None, LLAMA + [f"checkpoint.pretrained_checkpoint={gone}"]))


def test_convert_export_hf_reads_a_nemo2_checkpoint(nemo_ckpt, tmp_path):
    """``plugtron convert export-hf NEMO_DIR HF_DIR``: the model from context/model.yaml, the weights
    from weights/; transformers gives the logits of the model the checkpoint was written from."""
    import transformers

    from plugtron.cli import main

    path, original = nemo_ckpt
    assert main(["convert", "export-hf", path, str(tmp_path / "hf")]) == 0
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    with torch.no_grad():
        got = hf(TOKENS).logits
    vocab = got.shape[-1]
    assert vocab == 257  # the byte-level vocabulary; the padding rows are removed
    assert (got - original[..., :vocab]).abs().max() <= 1e-4


@pytest.mark.slow
def test_nemo2_checkpoint_reshards_to_tp2(nemo_ckpt, tmp_path):
    """Written at TP=1, loaded into TP=2 on two processes: the first loss equals one process's."""
    from helpers import torchrun

    path, _ = nemo_ckpt
    steps = [o for o in LLAMA if o != "train.skip_train=true"] + [f"checkpoint.pretrained_checkpoint={path}",
                                                                 "train.train_iters=2", "rng.seed=5"]
    one = train(load_config(None, steps))
    # the vocabulary is padded to a multiple of divisor x TP: 32 x 2 keeps the checkpoint's 320 rows
    two = torchrun(tmp_path, "tp2", steps + ["model.tensor_model_parallel_size=2", "model.make_vocab_size_divisible_by=32"])
    print("first losses, TP=1 vs TP=2:", float(one["losses"][0]), two["losses"][0])
    assert abs(float(one["losses"][0]) - two["losses"][0]) < 1e-5
