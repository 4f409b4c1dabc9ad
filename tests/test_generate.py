"""``plugtron generate``: greedy decoding of an imported Llama equals ``transformers``' ``generate``
token for token; sampling is reproducible by seed; the tiny recipe's checkpoint generates text; bad
input is one clear error."""

import os
import shutil
import subprocess

import pytest
import torch

from _hf_models import build, save
from _tokenizer_files import train_bpe
from helpers import SMALL

import transformers  # noqa: F401  (the test extra installs it; this test must run, never skip)

PLUGTRON = shutil.which("plugtron") or pytest.fail("the plugtron command is not installed (pip install -e .)")
VOCAB = 300  # the tokenizer's size (>= 257: a byte-level BPE needs the 256 bytes + </s>)
PROMPT = "the cat sat on the"


def _cli(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    return subprocess.run([PLUGTRON, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """(HF model, tokenizer, plugtron checkpoint) of a tiny Llama 3.1 with its own tokenizer."""
    from plugtron.data.file_tokenizers import HuggingFaceTokenizer
    from plugtron.providers.hf import AutoBridge

    root = tmp_path_factory.mktemp("gen")
    model = build("llama", vocab=VOCAB)
    hf_dir = save(model, root / "hf")
    train_bpe(str(hf_dir), vocab_size=VOCAB)
    AutoBridge.import_ckpt(str(hf_dir), str(root / "ckpt"))
    tok = HuggingFaceTokenizer(str(hf_dir))
    assert tok.vocab_size == VOCAB
    return model, tok, root / "ckpt"


def test_import_records_the_model_directory_tokenizer(imported):
    from plugtron.config import from_yaml

    _, _, ckpt = imported
    cfg = from_yaml((ckpt / "iter_0000000" / "run_config.yaml").read_text())
    assert cfg.tokenizer.tokenizer_type == "HuggingFaceTokenizer"
    # the files are copied into the checkpoint and recorded relative to it
    assert cfg.tokenizer.tokenizer_model == "tokenizer"
    assert os.path.isfile(ckpt / "iter_0000000" / "tokenizer" / "tokenizer.json")


def test_a_run_from_the_import_takes_its_tokenizer_and_another_is_named_beside_it(imported):
    """No need to repeat the tokenizer; setting another one is allowed but never silent."""
    from plugtron.config import load_config

    _, _, ckpt = imported
    cfg = load_config(None, [f"checkpoint.pretrained_checkpoint={ckpt}"])
    assert cfg.tokenizer.tokenizer_type == "HuggingFaceTokenizer" and not [n for n in cfg.notes if n.startswith("tokenizer")]
    cfg = load_config(None, [f"checkpoint.pretrained_checkpoint={ckpt}", "tokenizer.tokenizer_type=ByteLevelTokenizer"])
    [note] = [n for n in cfg.notes if n.startswith("tokenizer")]
    assert "ByteLevelTokenizer (yours) replaces HuggingFaceTokenizer" in note and "checkpoint.pretrained_checkpoint" in note


def test_greedy_equals_transformers_generate_token_for_token(imported):
    from plugtron.inference.generate import GenerationSettings, generate_ids, open_checkpoint

    model, tok, ckpt = imported
    prompt = tok.tokenize(PROMPT)
    n = 24
    with torch.no_grad():
        ref = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False,
                             eos_token_id=tok.eod, pad_token_id=tok.eod)[0, len(prompt):].tolist()
    with open_checkpoint(str(ckpt)) as loaded:
        got = generate_ids(loaded.model, prompt, GenerationSettings(max_new_tokens=n), loaded.provider.vocab_size,
                           loaded.provider.seq_length, stop_id=tok.eod)
        text = loaded.generate(PROMPT, GenerationSettings(max_new_tokens=n))
    assert len(ref) >= 8, ref  # enough tokens to compare (an early end-of-document would make this weak)
    assert got == ref
    assert text == tok.detokenize(ref)


def test_sampling_is_reproducible_by_seed_and_top_k_1_is_greedy(imported):
    from plugtron.inference.generate import GenerationSettings, open_checkpoint

    _, _, ckpt = imported
    with open_checkpoint(str(ckpt)) as loaded:
        def gen(**kw):
            return loaded.generate(PROMPT, GenerationSettings(max_new_tokens=20, **kw))

        a, b, c = gen(temperature=1.0, seed=1), gen(temperature=1.0, seed=1), gen(temperature=1.0, seed=2)
        assert a == b and a != c
        assert gen(temperature=0.7, top_k=1, seed=5) == gen()  # only the most likely token can be drawn


def test_cli_prints_prompt_and_continuation(imported, tmp_path):
    from plugtron.inference.generate import GenerationSettings, open_checkpoint

    _, _, ckpt = imported
    proc = _cli("generate", str(ckpt), "--prompt", PROMPT, "--max-new-tokens", "10", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open_checkpoint(str(ckpt)) as loaded:
        expected = loaded.generate(PROMPT, GenerationSettings(max_new_tokens=10))
    assert proc.stdout == PROMPT + expected + "\n"


def test_tiny_recipe_checkpoint_generates_text(tmp_path):
    from plugtron.config import load_config
    from plugtron.training import train

    save_dir = tmp_path / "run"
    train(load_config(None, SMALL + ["train.train_iters=30", "train.eval_interval=null", f"checkpoint.save={save_dir}"]))
    proc = _cli("generate", str(save_dir), "--prompt", "The ", "--max-new-tokens", "40", "--temperature", "0.8",
                "--top-k", "20", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("The ") and len(out) > len("The \n"), out


@pytest.mark.parametrize("args, expected", [
    (["generate", "nowhere", "--prompt", "x"], "plugtron: error: generate: nowhere does not exist"),
    (["generate", ".", "--prompt", "x"], "plugtron: error: generate: . holds no checkpoint"),
    (["generate", "nowhere", "--prompt", "x", "--temperature", "-1", "--max-new-tokens", "0"],
     "--temperature: expected a finite value >= 0"),
])
def test_bad_input_is_one_clear_error(tmp_path, args, expected):
    proc = _cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("plugtron: error") == 1
