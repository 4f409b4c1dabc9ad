"""MoE families imported from ``transformers`` at TP=1 and run with expert parallelism 2 (two gloo
processes, each holding half of the experts; tokens travel to their experts' process and back through
Megatron's alltoall dispatcher): the logits equal the Hugging Face model's within 1e-5 on both ranks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _hf_models import build, save, tokens

HERE = Path(__file__).parent
FAMILIES = ("qwen3_moe", "glm4_moe", "deepseek_v3", "gpt_oss")  # one launch for all: each costs a torchrun start


@pytest.mark.slow
def test_expert_parallel_logits_match_transformers(tmp_path):
    from plugtron.providers.hf import AutoBridge

    for family in FAMILIES:
        model = build(family)
        AutoBridge.import_ckpt(str(save(model, tmp_path / family / "hf")), str(tmp_path / family / "mcore"))
        with torch.no_grad():
            torch.save(model(tokens()).logits, tmp_path / family / "ref.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "_hf_ep2.py"), str(tmp_path), *FAMILIES]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "ep2.json").read_text())
    print("EP=2 [max |logit diff|, local experts] per rank:", result)
    assert set(result) == set(FAMILIES)
    for family, ranks in result.items():
        experts = build(family).config.to_dict()
        total = experts.get("num_experts") or experts.get("n_routed_experts") or experts.get("num_local_experts")
        # each rank holds half of every MoE layer's experts
        moe_layers = ranks[0][1] // (total // 2)
        assert moe_layers >= 1 and all(r[1] == moe_layers * total // 2 for r in ranks), (family, ranks)
        assert max(r[0] for r in ranks) <= 1e-5, (family, ranks)
