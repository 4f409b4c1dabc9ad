"""Import straight into a TP=2 layout on two gloo processes: logits match transformers; a TP=1
import loads at TP=2, and the TP=2 checkpoint exports (resharded to TP=1) bit for bit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _hf_models import build, save, tokens

import transformers  # noqa: E402,F401  (the test extra installs it; these tests must run, never skip)
HERE = Path(__file__).parent
# Every family: GQA + RoPE scaling (Llama 3.1), sliding window (Mistral), QKV bias + tied embeddings
# (Qwen2), MoE with expert tensor parallelism (Mixtral), MHA with biases + learned positions (GPT-2),
# per-head QK norm with head_dim != hidden/heads (Qwen3), post-sublayer norms and a QK norm over the
# whole projections, its sum of squares all-reduced over the TP ranks (OLMo 2); post-norms + QK norms +
# sliding/global layers + soft-capping (Gemma 3), fused qkv/gate_up + partial rotary (Phi-3); QK norm +
# renormalised top-k experts (Qwen3-MoE); MLA's column-parallel down projections gathered, per-head up
# projections split by heads, dense + MoE layers with a shared expert (DeepSeek-V3); partial rotary + q/k/v
# biases + dense and MoE layers with sigmoid grouped routing and a shared expert (GLM-4.5).
FAMILIES = ("llama", "mistral", "qwen2", "mixtral", "gpt2", "qwen3", "olmo2", "gemma3", "phi3", "qwen3_moe", "deepseek_v3",
            "glm4_moe")
STRICT = ("qwen3", "olmo2", "qwen3_moe", "deepseek_v3", "glm4_moe")  # held to 1e-5


@pytest.mark.slow
def test_import_into_tp2_matches_transformers(tmp_path):
    from safetensors.torch import load_file

    from plugtron.providers.hf import AutoBridge

    for family in FAMILIES:
        model = build(family)
        save(model, tmp_path / family / "hf")
        with torch.no_grad():
            torch.save(model(tokens()).logits, tmp_path / family / "ref.pt")
    AutoBridge.import_ckpt(str(tmp_path / "gpt2" / "hf"), str(tmp_path / "gpt2" / "tp1"))  # TP=1 -> load at TP=2
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "_hf_tp2.py"), str(tmp_path), *FAMILIES]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    diffs = json.loads((tmp_path / "tp2.json").read_text())
    print("TP=2 max |logit diff|:", diffs)
    assert set(diffs) == set(FAMILIES) | {"gpt2 tp1->tp2"} and max(diffs.values()) <= 1e-4, diffs
    assert max(diffs[f] for f in STRICT) <= 1e-5, diffs
    for family in ("llama", "gpt2", "olmo2"):  # export reshards TP=2 -> TP=1
        AutoBridge.export_ckpt(str(tmp_path / family / "tp2"), str(tmp_path / family / "out"))
        a = load_file(tmp_path / family / "hf" / "model.safetensors")
        b = load_file(tmp_path / family / "out" / "model.safetensors")
        assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
