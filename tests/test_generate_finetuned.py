"""Generate from anything training produces (issue 29, points 1, 2, 6, 9): a tiny random Llama with
its own tokenizer is imported, LoRA-fine-tuned for 3 steps without naming the tokenizer again, and
``plugtron generate`` on the adapter checkpoint and on the merged one equals ``transformers`` +
``peft`` greedy decoding token for token; every checkpoint carries the tokenizer files (relative
paths, so it works from any directory), and ``export-hf`` writes them next to config.json so
``AutoTokenizer`` loads the export."""

import copy
import os
import shutil
import subprocess

import peft  # noqa: F401  (the test extra installs it; these tests must run, never skip)
import pytest
import torch
import transformers as T
import yaml

from _hf_models import build, save
from _tokenizer_files import train_bpe
from plugtron.cli import main as plugtron_main
from plugtron.training import train

PLUGTRON = shutil.which("plugtron") or pytest.fail("the plugtron command is not installed (pip install -e .)")
VOCAB = 300
PROMPT = "the cat sat on the"
N = 16
TRAIN = ["train.train_iters=3", "train.eval_interval=null", "train.global_batch_size=4", "train.micro_batch_size=2",
         "optimizer.lr=2e-3", "scheduler.lr_warmup_iters=0", "logger.log_interval=1", "logger.run_summary=false",
         "logger.metrics_file=false", "logger.log_throughput=false", "model.seq_length=64", "peft.dim=8"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(root, HF model, HF tokenizer dir) after import -> LoRA 3 steps -> merge -> export."""
    from plugtron.config import load_config
    from plugtron.providers.hf import AutoBridge
    from test_sft import write_root

    root = tmp_path_factory.mktemp("genft")
    model = build("llama", vocab=VOCAB, positions=128)
    hf_dir = save(model, root / "hf")
    train_bpe(str(hf_dir), vocab_size=VOCAB)
    AutoBridge.import_ckpt(str(hf_dir), str(root / "base"))
    write_root(root / "data")
    base_model = yaml.safe_load((root / "base" / "iter_0000000" / "run_config.yaml").read_text())["model"]
    (root / "model.yaml").write_text(yaml.safe_dump({"model": base_model}))
    cfg = load_config(str(root / "model.yaml"), TRAIN + [
        f"dataset.dataset_root={root / 'data'}", "dataset.seq_length=64",
        f"checkpoint.pretrained_checkpoint={root / 'base'}", f"checkpoint.save={root / 'lora'}"])
    assert cfg.tokenizer.tokenizer_type == "HuggingFaceTokenizer"  # taken from the import, not repeated
    train(cfg)
    assert plugtron_main(["peft", "merge", str(root / "lora"), str(root / "merged")]) == 0
    assert plugtron_main(["peft", "export-hf", str(root / "lora"), str(root / "adapter")]) == 0
    assert plugtron_main(["convert", "export-hf", str(root / "merged"), str(root / "merged_hf")]) == 0
    return root, model, hf_dir


def _reference(model, hf_dir, adapter_dir):
    from peft import PeftModel

    tok = T.AutoTokenizer.from_pretrained(str(hf_dir))
    prompt = tok(PROMPT, add_special_tokens=False)["input_ids"]
    adapted = PeftModel.from_pretrained(copy.deepcopy(model), str(adapter_dir)).eval()  # peft injects in place
    eos = tok.eos_token_id
    with torch.no_grad():
        out = adapted.generate(input_ids=torch.tensor([prompt]), max_new_tokens=N, do_sample=False,
                               eos_token_id=eos, pad_token_id=eos)
    return prompt, out[0, len(prompt):].tolist(), tok


def _generate(ckpt):
    from plugtron.inference.generate import GenerationSettings, generate_ids, open_checkpoint

    with open_checkpoint(str(ckpt)) as loaded:
        ids = loaded.tokenizer.tokenize(PROMPT)
        new = generate_ids(loaded.model, ids, GenerationSettings(max_new_tokens=N), loaded.provider.vocab_size,
                           loaded.provider.seq_length, stop_id=loaded.tokenizer.eod)
        return ids, new, loaded.generate(PROMPT, GenerationSettings(max_new_tokens=N))


def test_generate_on_adapter_and_merged_checkpoints_equals_peft(runs):
    root, model, hf_dir = runs
    prompt, ref, tok = _reference(model, hf_dir, root / "adapter")
    with torch.no_grad():
        plain = model.generate(input_ids=torch.tensor([prompt]), max_new_tokens=N, do_sample=False,
                               eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)[0, len(prompt):].tolist()
    assert len(ref) >= 8 and ref != plain  # the adapters change what is generated: a real check of applying them
    for ckpt in (root / "lora", root / "merged"):
        ids, new, text = _generate(ckpt)
        assert ids == prompt and new == ref, ckpt
        assert text == tok.decode(ref)


def test_every_checkpoint_carries_its_tokenizer_relative_to_itself(runs):
    root, _, hf_dir = runs
    for ckpt in ("base/iter_0000000", "lora/iter_0000003", "merged/iter_0000000"):
        recorded = yaml.safe_load((root / ckpt / "run_config.yaml").read_text())["tokenizer"]
        assert recorded["tokenizer_type"] == "HuggingFaceTokenizer" and recorded["tokenizer_model"] == "tokenizer", ckpt
        assert (root / ckpt / "tokenizer" / "tokenizer.json").read_bytes() == (hf_dir / "tokenizer.json").read_bytes()
        manifest = yaml.safe_load((root / ckpt / "manifest.json").read_text())
        assert "tokenizer/tokenizer.json" in str(manifest), ckpt  # verified on load like the weights


def test_export_writes_a_tokenizer_autotokenizer_loads(runs):
    root, _, hf_dir = runs
    exported = T.AutoTokenizer.from_pretrained(str(root / "merged_hf"))
    original = T.AutoTokenizer.from_pretrained(str(hf_dir))
    assert exported(PROMPT)["input_ids"] == original(PROMPT)["input_ids"]
    assert exported.eos_token == original.eos_token == "</s>"


def test_a_moved_checkpoint_generates_from_another_directory(runs, tmp_path):
    """Recorded paths are relative to the checkpoint: a moved checkpoint generates from anywhere,
    with the tokenizer files it carries."""
    root, _, _ = runs
    moved = tmp_path / "moved"
    shutil.copytree(root / "merged", moved)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    out = subprocess.run([PLUGTRON, "generate", str(moved), "--prompt", PROMPT, "--max-new-tokens", str(N)],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    _, _, text = _generate(root / "merged")
    assert out.stdout == PROMPT + text + "\n"


def test_a_resumed_run_keeps_carrying_the_tokenizer_after_retention_removed_its_source(tmp_path):
    """The resumed run's tokenizer is the one inside the checkpoint it loaded; retention
    (most_recent_k=1) deletes that checkpoint, and later saves still carry the same files."""
    from helpers import SMALL
    from plugtron.config import load_config

    tok = train_bpe(str(tmp_path / "tok"), vocab_size=VOCAB)
    run = SMALL + ["train.eval_interval=null", "scheduler.lr_warmup_iters=0", "dataset.mock=true", f"checkpoint.save={tmp_path / 'ck'}"]
    train(load_config(None, run + ["train.train_iters=4", "train.exit_interval=2", "tokenizer.tokenizer_type=HuggingFaceTokenizer",
                                   f"tokenizer.tokenizer_model={tok}"]))
    cfg = load_config(None, run + ["train.train_iters=4", f"checkpoint.load={tmp_path / 'ck'}",
                                   "checkpoint.save_interval=1", "checkpoint.most_recent_k=1"])
    assert cfg.tokenizer.tokenizer_model == str(tmp_path / "ck" / "iter_0000002" / "tokenizer")  # recorded, resolved
    train(cfg)
    assert not (tmp_path / "ck" / "iter_0000002").exists()
    carried = tmp_path / "ck" / "iter_0000004" / "tokenizer"
    assert (carried / "tokenizer.json").read_bytes() == (tmp_path / "tok" / "tokenizer.json").read_bytes()
    assert (carried / "tokenizer_config.json").is_file()
