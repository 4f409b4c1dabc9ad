"""LoRA, DoRA and canonical LoRA: each trains (the answers' loss falls), merges exactly (merged
logits = adapted logits; the streamed ``peft merge`` writes the checkpoint that folding the adapters
into the whole model and saving it writes, tensor for tensor), the merged checkpoint exports to a Hugging Face model with the same logits
in transformers, and the adapters alone export to Hugging Face PEFT's layout, which the ``peft``
library loads onto the exported base with the same logits."""

import json
from pathlib import Path

import peft  # noqa: F401  (the test extra installs it; these tests must run, never skip)
import pytest
import torch
import transformers as T

from _hf_models import megatron_logits
from _peft_fixtures import VOCAB, config, ids, make_base
from test_hf_streaming import _index
from plugtron.cli import main as plugtron_main
from plugtron.errors import CheckpointError
from plugtron.providers.hf import megatron_side
from plugtron.providers.peft.merge import recorded_tokenizer
from plugtron.training import train

TARGETS = {"lora": [], "dora": [], "canonical_lora": ["peft.target_modules=[q_proj,v_proj,linear_proj,gate_proj,linear_fc2]"]}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_base(tmp_path_factory.mktemp("peft"))


def assert_same_checkpoint(streamed: Path, whole: Path) -> None:
    """The same index entries, bit-identical tensors and the same run_config.yaml / hf_config.json."""
    a, b = _index(streamed), _index(whole)
    assert a.keys() == b.keys()
    for key in a:
        assert type(a[key]) is type(b[key]), key
        if hasattr(a[key], "size"):
            assert a[key].size == b[key].size, key
    with megatron_side.megatron_world(1):
        _, m1 = megatron_side.load_verified(streamed, megatron_side.provider_of(streamed))
        _, m2 = megatron_side.load_verified(whole, megatron_side.provider_of(whole))
        p1, p2 = dict(m1.named_parameters()), dict(m2.named_parameters())
        assert p1.keys() == p2.keys()
        assert [k for k in p1 if not torch.equal(p1[k], p2[k])] == []
    for name in ("run_config.yaml", megatron_side.HF_CONFIG):
        assert (streamed / name).read_bytes() == (whole / name).read_bytes()


def _a_failed_read_publishes_nothing(run: Path, out: Path) -> None:
    """A base weight that cannot be read while the merge writes: plugtron's own error, nothing published."""
    from plugtron.providers.hf import streaming

    real_read = streaming.CheckpointReader.read

    def read(self, name, meta):
        if name == "decoder.layers.1.mlp.linear_fc1.weight":
            raise CheckpointError(f"{self.path}: cannot load '{name}' (simulated)")
        return real_read(self, name, meta)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(streaming.CheckpointReader, "read", read)
        with pytest.raises(CheckpointError, match="linear_fc1.weight' \\(simulated\\)"):
            from plugtron.providers.peft.merge import merge

            merge(str(run), str(out))
    assert not (out / "iter_0000000").exists() and not (out / "latest_checkpointed_iteration.txt").exists()


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
    with adapted_model(str(tmp_path / "run")) as (cfg, provider, model, path):
        adapted = megatron_logits(model, toks)[..., :VOCAB]
        assert fold(model) > 0
        merged = megatron_logits(model, toks)[..., :VOCAB]
        # the whole folded model saved as one (the merge before it streamed)
        megatron_side.save(model, provider, tmp_path / "whole", hf_config=json.loads((root / "base" / "iter_0000000" /
                           megatron_side.HF_CONFIG).read_text()), tokenizer=recorded_tokenizer(cfg, path))
    assert (merged - adapted).abs().max() <= 1e-5

    assert plugtron_main(["peft", "merge", str(tmp_path / "run"), str(tmp_path / "merged")]) == 0
    assert_same_checkpoint(tmp_path / "merged" / "iter_0000000", tmp_path / "whole" / "iter_0000000")
    if method == "lora":
        _a_failed_read_publishes_nothing(tmp_path / "run", tmp_path / "failed")
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
