"""Full NeMo 2.0 scripts (pretraining, SFT, PEFT; tests/migrate_scripts/) migrate to plugtron configs
that validate as written (over Megatron Bridge's defaults, ``--recipe none``) and, with the model
shrunk by overrides, train on CPU for a few steps.
The SFT and PEFT scripts restore a NeMo 2.0 checkpoint (built as NeMo writes it) of the shrunk model.
LoRA itself is not implemented yet: the PEFT config validates with its peft section and trains with
``peft=null`` (full fine-tuning of the same model), which is what this test can check today."""

import json
from pathlib import Path

import pytest
import yaml

import _nemo2_fixture
from plugtron.config import TokenizerConfig, load_config
from plugtron.data.preprocess.parallel import preprocess
from plugtron.migrate import migrate_script
from plugtron.training import train

SCRIPTS = Path(__file__).parent / "migrate_scripts"
MODEL = ["model.num_layers=2", "model.hidden_size=64", "model.ffn_hidden_size=128", "model.num_attention_heads=4",
         "model.num_query_groups=2", "model.vocab_size=null", "model.make_vocab_size_divisible_by=64", "model.seq_length=64"]


def migrated(tmp_path, name):
    """The script with /lustre moved under tmp_path, migrated; returns (yaml path, migration)."""
    script = tmp_path / f"{name}.py"
    script.write_text((SCRIPTS / f"{name}.py").read_text().replace("/lustre", str(tmp_path)))
    m = migrate_script(str(script))
    out = tmp_path / f"{name}.yaml"
    from plugtron.config.yaml_io import dumps

    out.write_text(dumps(m.tree()))
    return str(out), m


def corpus(path, n=80):
    path.parent.mkdir(parents=True, exist_ok=True)
    src = path.with_suffix(".jsonl")
    src.write_text("".join(json.dumps({"text": f"document {i}: " + f"w{i % 13} " * (20 + i % 17)}) + "\n" for i in range(n)))
    prefix = preprocess(str(src), str(path), TokenizerConfig(), workers=1)["output_prefix"]
    assert prefix == str(path) + "_text_document"


def sft_data(root, n=(24, 8, 8)):
    root.mkdir(parents=True, exist_ok=True)
    for split, count in zip(("training", "validation", "test"), n):
        rows = [{"input": f"Q{i}: {i}+{i}=", "output": str(2 * i)} for i in range(count)]
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def losses(summary):
    return [float(x) for x in summary["losses"]]


def test_pretraining_script(tmp_path):
    out, m = migrated(tmp_path, "pretrain_llama3_8b")
    assert sorted(u.nemo for u in m.unmapped) == ["NeMoLogger.log_dir", "Trainer.callbacks", "Trainer.devices",
                                                  "Trainer.num_nodes"]
    load_config(out, recipe="none").validate()  # as migrated: Llama 3 8B, blend of two datasets, bf16
    corpus(tmp_path / "datasets" / "web")
    corpus(tmp_path / "datasets" / "code")
    cfg = load_config(out, MODEL + ["dataset.sequence_length=64", "train.global_batch_size=4", "train.micro_batch_size=2"],
                      recipe="none")
    summary = train(cfg)
    assert len(summary["losses"]) == 6 and summary["eval"]["valid"], summary["eval"]
    assert (tmp_path / "checkpoints" / "llama3-8b" / "iter_0000006").is_dir()  # ModelCheckpoint -> checkpoint.save


@pytest.fixture(scope="module")
def nemo_pretrained(tmp_path_factory):
    """A NeMo 2.0 checkpoint of the shrunk Llama 3 8B (what the SFT/PEFT scripts restore)."""
    out = tmp_path_factory.mktemp("pretrained") / "step=1000-last"
    return str(_nemo2_fixture.make(str(out), ["model.provider=llama3_8b"] + MODEL + ["dataset.sequence_length=64"]))


def _place(nemo_pretrained, tmp_path):
    import shutil

    dst = tmp_path / "checkpoints" / "llama3-8b" / "step=1000-last"
    shutil.copytree(nemo_pretrained, dst)
    sft_data(tmp_path / "datasets" / "sft")


def test_sft_script(tmp_path, nemo_pretrained):
    out, m = migrated(tmp_path, "sft_llama3_8b")
    assert [u.nemo for u in m.unmapped] == ["Trainer.devices"]
    _place(nemo_pretrained, tmp_path)
    # as migrated but for the length: the script's 4096 is longer than the fixture model's 64 positions,
    # which a run from that checkpoint refuses (issue 29: the sequence length follows the model)
    load_config(out, ["model.seq_length=64", "dataset.seq_length=64"], recipe="none").validate()
    data = yaml.safe_load(Path(out).read_text())
    assert data["checkpoint"]["pretrained_checkpoint"].endswith("step=1000-last")
    summary = train(load_config(out, MODEL + ["dataset.seq_length=64"], recipe="none"))
    assert len(summary["losses"]) == 4 and summary["eval"]["valid"]


def test_peft_script(tmp_path, nemo_pretrained):
    out, m = migrated(tmp_path, "peft_llama3_8b")
    assert [u.nemo for u in m.unmapped] == ["finetune_recipe.num_nodes", "finetune_recipe.num_gpus_per_node"]
    _place(nemo_pretrained, tmp_path)
    cfg = load_config(out, ["model.seq_length=64", "dataset.seq_length=64"], recipe="none").validate()
    assert (cfg.peft.dim, cfg.peft.alpha, cfg.peft.target_modules) == (8, 16, ["linear_qkv", "linear_proj"])
    # LoRA training is not implemented yet (another issue): train the same config without the peft section
    summary = train(load_config(out, MODEL + ["dataset.seq_length=64", "peft=null"], recipe="none"))
    assert len(summary["losses"]) == 4
