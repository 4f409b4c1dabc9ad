"""StableLM end to end, against ``transformers``' own implementation (nothing downloaded: a tiny
random model is built locally, with every norm and bias randomised so a mis-mapped one shows)."""

import json

import pytest
import torch

VOCAB, SEQ = 250, 16


def _hf_model(**overrides):
    import transformers as T

    torch.manual_seed(0)
    cfg = T.StableLmConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                           use_qkv_bias=True, partial_rotary_factor=0.25, rope_theta=10000.0, **overrides)
    model = T.StableLmForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.2 * torch.randn_like(p) if "norm" in name and name.endswith("weight")
                    else 0.1 * torch.randn_like(p) if p.dim() == 1 else 0.08 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from plugtron.providers.hf import AutoBridge

    root = tmp_path_factory.mktemp("stablelm")
    model = _hf_model()
    model.save_pretrained(root / "hf", safe_serialization=True)
    AutoBridge.import_ckpt(str(root / "hf"), str(root / "mcore"))
    return model, root


def test_imported_logits_match_transformers(imported):
    from plugtron.providers.hf import megatron_side as ms

    model, root = imported
    toks = torch.randint(0, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(toks).logits
    with ms.megatron_world(1):
        provider, mc = ms.load_model(root / "mcore")
        mc.eval()
        with torch.no_grad():
            got = mc(toks, torch.arange(SEQ).expand_as(toks), None)
    assert type(provider).__name__ == "StableLMProvider" and provider.rotary_percent == 0.25
    diff = (got[..., :VOCAB] - ref).abs().max().item()
    print(f"stablelm: max |logit diff| = {diff:.3e}")
    assert diff <= 1e-5, diff


def test_export_gives_back_every_tensor(imported):
    import transformers as T
    from safetensors.torch import load_file

    from plugtron.providers.hf import AutoBridge

    model, root = imported
    AutoBridge.export_ckpt(str(root / "mcore"), str(root / "exported"))
    config = json.loads((root / "exported" / "config.json").read_text())
    assert config["architectures"] == ["StableLmForCausalLM"] and config["partial_rotary_factor"] == 0.25
    back = load_file(root / "exported" / "model.safetensors")
    for name, p in model.state_dict().items():
        assert torch.equal(back[name], p), name
    assert isinstance(T.AutoModelForCausalLM.from_pretrained(root / "exported"), T.StableLmForCausalLM)


def test_what_megatron_cannot_reproduce_is_refused(tmp_path):
    from plugtron.providers.hf.configs import family_of_config
    from plugtron.providers.hf.errors import UnsupportedArchitecture

    import transformers as T

    cfg = T.StableLmConfig(qk_layernorm=True, architectures=["StableLmForCausalLM"]).to_dict()
    with pytest.raises(UnsupportedArchitecture, match=r"qk_layernorm=True is not supported"):
        family_of_config(cfg).to_provider(cfg)


def test_the_provider_and_the_recipe_are_picked_by_name():
    from plugtron.config import load_config
    from plugtron.testing import run_training

    cfg = load_config(None, ["model.provider=stablelm_2_1_6b"])
    assert type(cfg.model).__name__ == "StableLM2_1_6B" and cfg.model.add_qkv_bias
    run = run_training(["train.train_iters=3"], recipe="tiny_stablelm")
    assert len(run.losses) == 3 and run.losses[-1] < run.losses[0]
