"""``plugtron migrate``: the guide's Before snippets give its After values (golden files), the report
names what was not migrated with its line, scripts are never imported, overrides use the same
table, docs/migration.md is the table, and the CLI does not import torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from plugtron.migrate import MigrationError, migrate_overrides, migrate_script

HERE = Path(__file__).parent
GUIDE = HERE / "migrate_guide"
SNIPPETS = sorted(p.stem for p in GUIDE.glob("*.py"))


def test_every_guide_snippet_has_a_golden_file():
    # 11 "Before (NeMo 2.0)" snippets in the guide: core, peft, trainer, strategy, mixed precision,
    # checkpoint, optimizer, tokenizer, nsys, pytorch profiler, MoE token drop
    assert len(SNIPPETS) == 11
    assert all((GUIDE / f"{n}.golden.yaml").is_file() for n in SNIPPETS)


@pytest.mark.parametrize("name", SNIPPETS)
def test_guide_before_snippet_gives_the_after_values(name):
    golden = yaml.safe_load((GUIDE / f"{name}.golden.yaml").read_text())
    m = migrate_script(str(GUIDE / f"{name}.py"))
    flat = m.flat()
    for field, want in golden["after"].items():
        if field in golden["not_in_before"]:
            # listed as a difference of the guide's own example: must really differ, so the list cannot rot
            assert flat.get(field) != want, f"{field} now matches the After snippet; remove it from not_in_before"
        else:
            assert field in flat and flat[field] == want, (field, flat.get(field), want)
    assert set(golden["not_in_before"]) <= set(golden["after"])
    assert flat == golden["migrated"]
    assert [f"{u.where} {u.nemo}" for u in m.unmapped] == golden["not_migrated"]


def _nested(flat):
    out = {}
    for field, value in flat.items():
        node, parts = out, field.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


@pytest.mark.parametrize("name", SNIPPETS)
def test_golden_after_values_are_plugtron_config(name):
    """The transcribed After values are fields plugtron's config accepts (as test_guide_snippets builds them)."""
    from plugtron.config.container import ConfigContainer, resolve_types
    from plugtron.config.converter import structure

    resolve_types()
    golden = yaml.safe_load((GUIDE / f"{name}.golden.yaml").read_text())
    data = _nested(golden["after"])
    if "dataset" in data and "dataset_root" not in data["dataset"] and "seq_length" in data["dataset"]:
        data["dataset"]["dataset_root"] = "/d"
    structure(data, ConfigContainer, source=name)
    structure(_nested(golden["migrated"]), ConfigContainer, source=name)


def write(tmp_path, text, name="script.py"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


REPORTED = '''\
import nemo_run as run
from nemo import lightning as nl
from nemo.collections import llm
import os

NODES = int(os.environ["NODES"])
trainer = nl.Trainer(
    max_steps=NODES * 100,
    devices=8,
    max_epochs=3,
    callbacks=[nl.GarbageCollectionCallback(gc_interval_train=10), MyFancyCallback(every=5),
               run.Config(OtherCallback)],
    strategy=nl.MegatronStrategy(tensor_model_parallel_size=2, ckpt_load_strictness=False, **extra),
)
ckpt = nl.ModelCheckpoint(save_top_k=2, monitor="val_loss", save_last=False, save_weights_only=True)
resume = nl.AutoResume(resume_ignore_no_checkpoint=True)
model = llm.GemmaModel(llm.GemmaConfig2B())
'''


def test_report_lists_computed_unknown_and_unsupported_with_lines(tmp_path):
    m = migrate_script(write(tmp_path, REPORTED))
    got = {(u.where, u.nemo): u.reason for u in m.unmapped}
    assert "computed value `NODES * 100`" in got[("script.py:8", "Trainer.max_steps")]
    assert "launcher setting" in got[("script.py:9", "Trainer.devices")]
    assert "epochs" in got[("script.py:10", "Trainer.max_epochs")]
    assert "unknown callback `MyFancyCallback`" in got[("script.py:11", "Trainer.callbacks")]
    assert "unknown callback `OtherCallback`" in got[("script.py:12", "Trainer.callbacks")]
    assert "`**extra` is not followed" in got[("script.py:13", "MegatronStrategy")]
    assert "save_last=False has no equivalent" in got[("script.py:15", "ModelCheckpoint.save_last")]
    assert "llm.GemmaModel has no plugtron equivalent" in got[("script.py:17", "GemmaModel")]
    assert "llm.GemmaConfig2B has no plugtron equivalent" in got[("script.py:17", "GemmaConfig2B")]
    flat = m.flat()
    assert flat["train.manual_gc"] is True and flat["train.manual_gc_interval"] == 10
    assert flat["model.tensor_model_parallel_size"] == 2 and flat["checkpoint.dist_ckpt_strictness"] == "log_all"
    assert flat["checkpoint.most_recent_k"] == 2 and flat["checkpoint.save_optim"] is False
    assert flat["checkpoint.exit_on_missing_checkpoint"] is False
    notes = {r.nemo: r.note for r in m.rows}
    assert "most recent" in notes["ModelCheckpoint.save_top_k"]
    assert "inverse" in notes["ModelCheckpoint.save_weights_only"]
    assert "inverse" in notes["AutoResume.resume_ignore_no_checkpoint"]


def test_cli_report_file_exit_status_and_strict(tmp_path):
    from plugtron.cli import main

    script = write(tmp_path, REPORTED)
    out, report = tmp_path / "p.yaml", tmp_path / "r.md"
    assert main(["migrate", "nemo2", script, "-o", str(out), "--report", str(report)]) == 1  # written, not all migrated
    text = report.read_text()
    assert "| script.py:15 | `ModelCheckpoint.save_top_k` | `checkpoint.most_recent_k` | 2 |" in text
    assert "- script.py:11: `Trainer.callbacks`: unknown callback `MyFancyCallback`" in text
    assert yaml.safe_load(out.read_text())["checkpoint"]["most_recent_k"] == 2
    before = out.read_text()
    assert main(["migrate", "nemo2", script, "-o", str(out)]) == 2  # never overwrites
    assert out.read_text() == before
    strict_out = tmp_path / "strict.yaml"
    assert main(["migrate", "nemo2", script, "-o", str(strict_out), "--strict"]) == 2
    assert not strict_out.exists()
    assert main(["migrate", "nemo2", str(tmp_path / "missing.py"), "-o", str(tmp_path / "m.yaml")]) == 2
    assert main(["migrate", "nemo2", write(tmp_path, "def f(:\n", "bad.py"), "-o", str(tmp_path / "b.yaml")]) == 2


SIDE_EFFECTS = '''\
import nemo_that_is_not_installed
from nemo import lightning as nl
open({marker!r}, "w").write("ran")
raise SystemExit("importing this script must never happen")
trainer = nl.Trainer(max_steps=20, val_check_interval=5)
'''


def test_script_is_never_imported_or_run(tmp_path, capsys):
    marker = tmp_path / "side_effect.txt"
    noisy = migrate_script(write(tmp_path, SIDE_EFFECTS.format(marker=str(marker)), "noisy.py"))
    quiet = migrate_script(write(tmp_path, "from nemo import lightning as nl\n\n\n\n"
                                           "trainer = nl.Trainer(max_steps=20, val_check_interval=5)\n", "quiet.py"))
    assert not marker.exists()
    assert noisy.flat() == quiet.flat() == {"train.train_iters": 20, "train.eval_interval": 5}
    assert "noisy" not in sys.modules and "nemo_that_is_not_installed" not in sys.modules


def test_overrides_use_the_same_table():
    m = migrate_overrides(["trainer.max_steps=1000 trainer.strategy.tensor_model_parallel_size=2 "
                           "trainer.strategy.sequence_parallel=True log.ckpt.save_top_k=3 "
                           "resume.resume_ignore_no_checkpoint=true optim.config.lr=3e-4 "
                           "trainer.plugins.precision=bf16-mixed data.global_batch_size=64 "
                           "model.config.num_layers=4 peft=lora trainer.devices=8 trainer.callbacks.0.x=1"])
    assert m.overrides() == [
        "train.train_iters=1000", "model.tensor_model_parallel_size=2", "model.sequence_parallel=true",
        "checkpoint.most_recent_k=3", "checkpoint.exit_on_missing_checkpoint=false", "optimizer.lr=0.0003",
        "mixed_precision=bf16-mixed", "train.global_batch_size=64", "model.num_layers=4", "peft={}",
    ]
    assert [(u.where, u.nemo) for u in m.unmapped] == [("override 11", "trainer.devices"),
                                                        ("override 12", "trainer.callbacks.0.x")]
    # what it prints is accepted by plugtron's own override parser
    from plugtron.config import parse_overrides

    assert parse_overrides(m.overrides())["model"]["num_layers"] == 4
    factory = migrate_overrides(["--factory llama3_8b trainer.max_steps=10", "--factory=llama31_8b"])
    assert factory.overrides() == ["model.provider=llama3_8b", "train.train_iters=10"]
    assert "conflicts with factory.model" in factory.unmapped[0].reason


def test_docs_are_the_table():
    from plugtron.migrate.docs import render

    assert (HERE.parent / "docs" / "migration.md").read_text() == render(), \
        "docs/migration.md is stale: python -m plugtron.migrate.docs > docs/migration.md"


def test_migrate_cli_does_not_import_torch(tmp_path):
    script = write(tmp_path, REPORTED)
    code = ("import sys, json; from plugtron.cli import main; "
            f"rc1 = main(['migrate', 'nemo2', {script!r}, '-o', {str(tmp_path / 'o.yaml')!r}, '--report', {str(tmp_path / 'r.md')!r}]); "
            "rc2 = main(['migrate', 'nemo2-overrides', 'trainer.max_steps=5']); "
            "print(json.dumps([rc1, rc2, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'megatron'))]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    rc1, rc2, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert (rc1, rc2, heavy) == (1, 0, [])


CALLBACKS = '''\
from nemo.lightning.pytorch import callbacks as cb
from nemo import lightning as nl
from nemo.collections import llm
from nemo.collections.nlp.modules.common.tokenizer_utils import get_nmt_tokenizer
import signal

trainer = nl.Trainer(callbacks=[
    cb.DdpParityChecker(interval=50),
    cb.GarbageCollectionCallback(gc_interval_train=100, gc_interval_val=0),
    cb.MegatronTokenDropCallback(moe_expert_capacity_factor=1.5, moe_pad_expert_input_to_capacity=True),
    cb.DeepEPCallback(),
    cb.MegatronCommOverlapCallback(overlap_grad_reduce=True, bucket_size=1024),
    cb.MegatronEnableExperimentalCallback(),
    cb.NsysCallback(start_step=3, end_step=5, ranks=[0, 1], gen_shape=True),
    cb.MemoryProfileCallback(ranks=[0]),
    cb.PreemptionCallback(sig=signal.SIGUSR2),
])
model = llm.MixtralModel(llm.MixtralConfig8x7B(num_layers=2))
tok = get_nmt_tokenizer("megatron", "GPT2BPETokenizer", vocab_file="/v.json", merges_file="/m.txt")
'''


def test_every_callback_of_the_guide_and_tokenizers(tmp_path):
    m = migrate_script(write(tmp_path, CALLBACKS))
    assert m.flat() == {
        "train.check_weight_hash_across_dp_replicas_interval": 50,
        "train.manual_gc": True, "train.manual_gc_interval": 100, "train.manual_gc_eval": False,
        "model.moe_expert_capacity_factor": 1.5, "model.moe_pad_expert_input_to_capacity": True,
        "comm_overlap": {}, "comm_overlap.overlap_grad_reduce": True, "comm_overlap.bucket_size": 1024,
        "dist.enable_megatron_core_experimental": True, "deepep": {},
        "profiling.use_nsys_profiler": True, "profiling.profile_step_start": 3, "profiling.profile_step_end": 5,
        "profiling.profile_ranks": [0, 1], "profiling.record_shapes": True, "profiling.record_memory_history": True,
        "train.exit_signal_handler": True, "train.exit_signal": "SIGUSR2",
        "model.provider": "mixtral_8x7b", "model.num_layers": 2,
        "tokenizer.tokenizer_type": "GPT2BPETokenizer", "tokenizer.vocab_file": "/v.json", "tokenizer.merge_file": "/m.txt",
    }
    assert [(u.where, u.nemo) for u in m.unmapped] == [("script.py:15", "MemoryProfileCallback.ranks")]
    assert "conflicts with NsysCallback.ranks (script.py:14) = [0, 1]" in m.unmapped[0].reason
    # the result is a plugtron config (structured without a machine check: DeepEP/CUDA are not needed)
    from plugtron.config.container import ConfigContainer, resolve_types
    from plugtron.config.converter import structure

    resolve_types()
    cfg = structure(m.tree(), ConfigContainer)
    assert cfg.comm_overlap.bucket_size == 1024 and type(cfg.model).__name__ == "Mixtral_8x7B"


def test_every_transform_is_documented():
    from plugtron.migrate.docs import _HOW
    from plugtron.migrate.values import TRANSFORMS

    assert set(_HOW) == set(TRANSFORMS) - {None}


def test_entry_points_only_when_they_come_from_nemo(tmp_path):
    own = migrate_script(write(tmp_path, "def finetune(model, peft):\n    pass\n\nfinetune(model='x', peft='lora')\n", "own.py"))
    assert own.flat() == {} and own.unmapped == []
    nemo = migrate_script(write(tmp_path, "from nemo.collections.llm import finetune\n"
                                          "finetune(model=llm.llama3_8b, peft='lora')\n", "nemo.py"))
    assert nemo.flat() == {"model.provider": "llama3_8b", "peft": {}}


def test_attribute_assignments_follow_the_variable(tmp_path):
    m = migrate_script(write(tmp_path, """\
from nemo import lightning as nl
from nemo.collections import llm
data = llm.FineTuningDataModule(dataset_root="/d")
data.seq_length = 512
model = llm.LlamaModel(config=llm.Llama3Config8B())
model.config.num_layers = 4
trainer = nl.Trainer(max_steps=10)
trainer.strategy.tensor_model_parallel_size = 2
trainer.unknown_thing = 1
"""))
    assert m.flat() == {"dataset.dataset_root": "/d", "dataset.seq_length": 512, "model.seq_length": 512,
                        "model.provider": "llama3_8b", "model.num_layers": 4, "train.train_iters": 10,
                        "model.tensor_model_parallel_size": 2}
    assert [(u.where, u.nemo) for u in m.unmapped] == [("script.py:9", "Trainer.unknown_thing")]


def test_qwen3_configs_and_recipes_map_to_the_new_providers(tmp_path):
    def provider(line, name):
        m = migrate_script(write(tmp_path, f"from nemo.collections import llm\n{line}\n", name))
        return m.flat().get("model.provider"), [u.reason for u in m.unmapped]

    assert provider("model = llm.Qwen3Model(config=llm.Qwen3Config8B())", "a.py") == ("qwen3_8b", [])
    assert provider("model = llm.Qwen3Model(llm.Qwen3Config600M())", "b.py") == ("qwen3_0_6b", [])
    assert provider("recipe = llm.qwen3_32b.pretrain_recipe()", "c.py")[0] == "qwen3_32b"
    _, unmapped = provider("model = llm.Qwen3Model(llm.Qwen3Config30B_A3B())", "d.py")  # MoE: no dense provider
    assert any("Qwen3Config30B_A3B has no plugtron equivalent" in r for r in unmapped), unmapped


@pytest.mark.parametrize("nemo, provider", [
    ("llm.Gemma3Model(config=llm.Gemma3Config1B())", "gemma3_1b"),
    ("llm.Gemma3Model(config=llm.Gemma3Config4B())", "gemma3_4b"),
    ("llm.Gemma3Model(config=llm.Gemma3Config12B())", "gemma3_12b"),
    ("llm.Gemma3Model(config=llm.Gemma3Config27B())", "gemma3_27b"),
    ("llm.Phi3Model(config=llm.Phi3ConfigMini())", "phi3_mini"),
])
def test_new_families_model_configs_map_to_their_providers(tmp_path, nemo, provider):
    from plugtron.providers.registry import provider_class

    m = migrate_script(write(tmp_path, f"from nemo.collections import llm\nmodel = {nemo}\n"))
    assert m.flat() == {"model.provider": provider} and m.unmapped == []
    provider_class(provider)  # registered
