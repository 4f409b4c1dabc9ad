"""Hugging Face import/export per family: logits of the imported Megatron model match
``transformers`` (fp32, max abs diff <= 1e-4) and export reproduces every tensor bit for bit."""

from pathlib import Path

import pytest
import torch

from _hf_models import FAMILIES, VOCAB, build, megatron_logits, save, tokens

import transformers  # noqa: E402,F401  (the test extra installs it; these tests must run, never skip)

TOL = 1e-4


@pytest.fixture(scope="module", params=FAMILIES)
def converted(request, tmp_path_factory):
    """(family, HF model, HF dir, Megatron checkpoint dir, exported HF dir) - converted once."""
    from plugtron.providers.hf import AutoBridge

    family = request.param
    root = tmp_path_factory.mktemp(family)
    model = build(family)
    hf_dir = save(model, root / "hf")
    AutoBridge.import_ckpt(str(hf_dir), str(root / "mcore"))
    AutoBridge.export_ckpt(str(root / "mcore"), str(root / "exported"))
    return family, model, hf_dir, root / "mcore", root / "exported"


def test_import_writes_the_pretrained_checkpoint_layout(converted):
    from plugtron.config import from_yaml
    from plugtron.providers.registry import provider_name

    family, _, _, ckpt, _ = converted
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "0"
    it = ckpt / "iter_0000000"
    assert (it / ".metadata").is_file() and (it / "common.pt").is_file()
    assert (it / "manifest.json").is_file() and not (ckpt / "iter_0000000.staging").exists()
    cfg = from_yaml((it / "run_config.yaml").read_text())
    assert provider_name(type(cfg.model)) == family
    assert cfg.model.vocab_size == VOCAB


def test_imported_logits_match_transformers(converted):
    from plugtron.providers.hf import megatron_side as ms

    family, model, _, ckpt, _ = converted
    toks = tokens()
    with torch.no_grad():
        ref = model(toks).logits
    with ms.megatron_world(1):
        _, mc = ms.load_model(ckpt)
        got = megatron_logits(mc, toks)
    assert got.shape[-1] == 256  # padded vocabulary; padding rows are not compared
    diff = (got[..., :VOCAB] - ref).abs().max().item()
    print(f"{family}: max |logit diff| = {diff:.3e}")
    assert diff <= TOL, diff


def test_export_is_bit_exact_and_loads_in_transformers(converted):
    import transformers as T
    from safetensors.torch import load_file

    family, model, hf_dir, _, out = converted
    original, exported = load_file(hf_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert sorted(exported) == sorted(original)
    for name, t in original.items():
        assert exported[name].dtype == t.dtype and torch.equal(exported[name], t), name
    # compared as transformers reads them (a key left at its default may be absent from one file)
    a, b = T.AutoConfig.from_pretrained(hf_dir).to_dict(), T.AutoConfig.from_pretrained(out).to_dict()
    arch_keys = ("architectures", "model_type", "vocab_size", "hidden_size", "n_embd", "num_hidden_layers",
                 "n_layer", "num_key_value_heads", "intermediate_size", "rope_scaling", "sliding_window",
                 "tie_word_embeddings", "num_local_experts", "num_experts_per_tok", "activation_function")
    for k in arch_keys:
        assert a.get(k) == b.get(k), k
    reloaded = T.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    toks = tokens()
    with torch.no_grad():
        assert torch.equal(reloaded(toks).logits, model(toks).logits)
