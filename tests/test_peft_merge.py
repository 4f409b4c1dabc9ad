"""LoRA, DoRA and canonical LoRA: each trains (the answers' loss falls), merges exactly (merged
logits = adapted logits), the merged checkpoint exports to a Hugging Face model with the same logits
in transformers, and the adapters alone export to Hugging Face PEFT's layout, which the ``peft``
library loads onto the exported base with the same logits."""

import peft  # noqa: F401  (the test extra installs it; these tests must run, never skip)
import pytest
import torch
import transformers as T

from _hf_models import megatron_logits
from _peft_fixtures import VOCAB, config, ids, make_base
from plugtron.cli import main as plugtron_main
from plugtron.errors import CheckpointError
from plugtron.training import train

TARGETS = {"lora": [], "dora": [], "canonical_lora": ["peft.target_modules=[q_proj,v_proj,linear_proj,gate_proj,linear_fc2]"]}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_base(tmp_path_factory.mktemp("peft"))


def hf_logits(model, toks):
    with torch.no_grad():
        return model(toks).logits


@pytest.mark.parametrize("method", ["lora", "dora", "canonical_lora"])
def test_train_merge_and_export(root, tmp_path, method):
    from plugtron.providers.peft.merge import adapted_model, fold

    run = train(config(root, ["train.train_iters=6", f"peft.method={method}", f"checkpoint.save={tmp_path / 'run'}"]
                       + TARGETS[method]))
    assert run["losses"][-1] < run["losses"][0] - 0.5, run["losses"]
    toks = ids()
    with adapted_model(str(tmp_path / "run")) as (_cfg, _provider, model, _path):
        adapted = megatron_logits(model, toks)[..., :VOCAB]
        assert fold(model) > 0
        merged = megatron_logits(model, toks)[..., :VOCAB]
    assert (merged - adapted).abs().max() <= 1e-5

    assert plugtron_main(["peft", "merge", str(tmp_path / "run"), str(tmp_path / "merged")]) == 0
    assert plugtron_main(["convert", "export-hf", str(tmp_path / "merged"), str(tmp_path / "merged_hf")]) == 0
    exported = T.AutoModelForCausalLM.from_pretrained(tmp_path / "merged_hf", attn_implementation="eager").eval()
    assert (hf_logits(exported, toks) - adapted).abs().max() <= 1e-4

    assert plugtron_main(["peft", "export-hf", str(tmp_path / "run"), str(tmp_path / "adapter"),
                     "--base-model", str(root / "hf")]) == 0
    from peft import PeftModel

    base = T.AutoModelForCausalLM.from_pretrained(root / "hf", attn_implementation="eager")
    with_adapter = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    assert (hf_logits(with_adapter, toks) - adapted).abs().max() <= 1e-4


def test_merge_refuses_what_it_cannot_merge(root, tmp_path, capsys):
    assert plugtron_main(["peft", "merge", str(root / "base"), str(tmp_path / "out")]) == 2
    assert "not an adapter checkpoint (no peft run saved it)" in capsys.readouterr().err
    assert plugtron_main(["peft", "merge", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    assert "plugtron: error:" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(CheckpointError, match="exists and is not an empty directory"):
        from plugtron.providers.peft.merge import merge

        merge(str(root / "base"), str(tmp_path / "full"))
    assert (tmp_path / "full" / "x").read_text() == "keep me"
