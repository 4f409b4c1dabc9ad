"""LoRA SFT on a tiny imported Llama: the answers' loss falls, only the adapters train (base hash
unchanged, trainable count = the formula, optimizer state for adapters only), adapter-only
checkpoints are small, record their base and resume bit-identically; bad configs are clear errors."""

import pytest
import torch
import transformers  # noqa: F401  (the test extra installs it; these tests must run, never skip)
import yaml

from _peft_fixtures import config, digest, dir_bytes, make_base
from plugtron.errors import CheckpointError, ConfigError, PluginError
from plugtron.training.trainer import Trainer, train


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_base(tmp_path_factory.mktemp("peft"))


def lora_count(dim, layers=2, h=64, nq=4, ng=2, hd=16, ffn=96, gated=True):
    """dim x (in + out) per adapted layer: linear_qkv, linear_proj, linear_fc1, linear_fc2."""
    qkv, fc1 = (nq + 2 * ng) * hd, (2 if gated else 1) * ffn
    return layers * dim * ((h + qkv) + (nq * hd + h) + (h + fc1) + (ffn + h))


def split_params(trainer):
    chunk = trainer.state.model[0]
    frozen = [p for p in chunk.parameters() if not p.requires_grad]
    return frozen, [p for p in chunk.parameters() if p.requires_grad]


def test_lora_trains_the_adapters_only_and_the_answer_loss_falls(root):
    t = Trainer(config(root, ["train.train_iters=8"]))
    frozen, trainable = split_params(t)
    assert sum(p.numel() for p in trainable) == lora_count(8)
    optimized = {id(p) for g in t.state.optimizer.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in trainable}  # no optimizer state for the base
    base_before, adapters_before = digest(frozen), digest(trainable)
    losses = t.train()["losses"]
    assert losses[-1] < losses[0] - 1.0, losses
    assert digest(frozen) == base_before
    assert digest(trainable) != adapters_before


def test_targets_hf_names_wildcards_and_exclusions(root):
    t = Trainer(config(root, ["train.train_iters=1", "peft.target_modules=[qkv_proj,o_proj]",
                              "peft.exclude_modules=['*.layers.1.*']"]))
    names = [n for n, p in t.state.model[0].named_parameters() if p.requires_grad]
    assert names and all(".layers.0.self_attention.linear_qkv." in n or ".layers.0.self_attention.linear_proj." in n
                         for n in names), names
    t.close()
    t = Trainer(config(root, ["train.train_iters=1", "peft.target_modules=['*.layers.1.mlp.linear_fc2']"]))
    _, trainable = split_params(t)
    assert sum(p.numel() for p in trainable) == 8 * (96 + 64)
    t.close()


def test_an_unknown_or_unmatched_target_lists_the_adaptable_names(root):
    with pytest.raises(ConfigError, match=r"peft.target_modules: unknown module name 'qkv'; expected one of .*linear_qkv"):
        train(config(root, ["peft.target_modules=[qkv]"]))
    with pytest.raises(PluginError, match=r"'\*.layers.7.\*' matches no adaptable module; the model's adaptable modules "
                                          r"are linear_fc1, linear_fc2, linear_proj, linear_qkv"):
        train(config(root, ["peft.target_modules=['*.layers.7.*']", "train.train_iters=1"]))


@pytest.mark.parametrize("override, message", [
    ("peft.dim=0", r"peft.dim: expected >= 1, got int 0"),
    ("checkpoint.pretrained_checkpoint=null", r"peft: requires checkpoint.pretrained_checkpoint"),
    ("peft.a2a_experimental=true", r"peft.a2a_experimental: adapters on MoE experts are not implemented"),
    ("peft.target_modules=[linear_q]", r"linear_q name\(s\) parts of a fused layer.*canonical_lora"),
])
def test_misconfigurations_are_clear_errors(root, override, message):
    with pytest.raises(ConfigError, match=message):
        train(config(root, [override]))


def test_peft_on_t5_is_refused():
    from plugtron.config import load_config

    from test_t5_training import T5

    with pytest.raises(ConfigError, match=r"peft: adapters are implemented for GPT-style decoder models; model is a T5"):
        train(load_config(None, T5 + ["peft.dim=8", "checkpoint.pretrained_checkpoint=/nowhere"]))


def test_adapter_checkpoints_are_small_record_the_base_and_resume_bit_identically(root, tmp_path):
    full = train(config(root, ["train.train_iters=1", f"checkpoint.save={tmp_path / 'full'}"], peft=False))
    assert full["iteration"] == 1
    # attention adapters of dim 2: ~1.4% of the tiny model's weights (a real model's share is smaller
    # still); the rest of the checkpoint (RNG state, run_config.yaml, index: ~70 kB) is the same in both
    adapters = ["peft.dim=2", "peft.target_modules=[linear_qkv,linear_proj]"]
    first = train(config(root, ["train.train_iters=6", "checkpoint.save_interval=3", f"checkpoint.save={tmp_path / 'a'}"]
                         + adapters))
    adapter_ckpt = tmp_path / "a" / "iter_0000003"
    ratio = dir_bytes(tmp_path / "full" / "iter_0000001") / dir_bytes(adapter_ckpt)
    assert ratio >= 10, ratio
    recorded = yaml.safe_load((adapter_ckpt / "run_config.yaml").read_text())["checkpoint"]["pretrained_checkpoint"]
    assert recorded == str(root / "base")
    again = train(config(root, ["train.train_iters=6", f"checkpoint.load={adapter_ckpt}", f"checkpoint.save={tmp_path / 'b'}"]
                        + adapters))
    assert again["losses"] == first["losses"][3:]  # bit-identical
    # an adapter checkpoint is no model: a run without peft (or using it as the base) is told what it needs
    with pytest.raises(CheckpointError, match=r"holds adapters only .* checkpoint.pretrained_checkpoint=" + str(root / "base")):
        train(config(root, ["train.train_iters=7", f"checkpoint.load={adapter_ckpt}"], peft=False))
    with pytest.raises(CheckpointError, match=r"holds adapters only \(a peft run's checkpoint\), not a model"):
        train(config(root, ["train.train_iters=1", f"checkpoint.pretrained_checkpoint={adapter_ckpt}"]))


def test_plugins_list_and_help_check_peft_without_torch():
    import subprocess
    import sys

    code = ("import sys; from plugtron.cli import main; "
            "rc = main(['plugins', 'list', 'peft.dim=8', 'checkpoint.pretrained_checkpoint=/x', 'peft.target_modules=[qkv]']); "
            "print('RC', rc, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "RC 2 False" in proc.stdout, proc.stdout + proc.stderr
    assert "peft.target_modules: unknown module name 'qkv'" in proc.stderr
    code = "import sys; from plugtron.cli import main\ntry: main(['peft', '--help'])\nexcept SystemExit: print('TORCH', 'torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "merge" in proc.stdout and "export-hf" in proc.stdout and "TORCH False" in proc.stdout, proc.stdout + proc.stderr
