"""Gemma 3 (text): a tiny random Gemma3ForCausalLM (a sliding layer with window 5 and its own RoPE
base, a global layer with linear RoPE scaling, QK norms, post-norms, soft-capped logits, vocabulary
250) imports with logits equal to transformers' (fp32), exports bit for bit, trains (first step's loss
and grad norm equal a plain transformers step), generates greedily as transformers does past the
window, and its LoRA adapters load in peft; unsupported variants are refused by name."""

import pytest
import torch

import transformers  # noqa: F401  (the test extra installs it; these tests must run, never skip)

from _family_checks import (LOGIT_TOL, assert_export_exact, convert, first_step_parity, greedy_matches,
                            lora_export_loads_in_peft, logits_diff)
from _hf_models import hf_config


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert("gemma3", tmp_path_factory.mktemp("gemma3"))


def test_import_logits_match_transformers_and_export_is_exact(converted):
    from plugtron.config import from_yaml

    model, hf_dir, ckpt, out = converted
    cfg = from_yaml((ckpt / "iter_0000000" / "run_config.yaml").read_text()).model
    assert type(cfg).__name__ == "Gemma3Provider"
    assert (list(cfg.window_size), cfg.window_attn_skip_freq, cfg.seq_len_interpolation_factor) == ([4, 0], 2, 4.0)
    diff = logits_diff(model, ckpt)
    print(f"gemma3: max |logit diff| = {diff:.3e}")
    assert diff <= LOGIT_TOL, diff
    assert_export_exact(model, hf_dir, out)


def test_greedy_generation_past_the_window_equals_transformers(converted):
    model, _, ckpt, _ = converted
    prompt = [5, 17, 42, 99, 3, 300, 7, 64, 128, 11]  # 10 tokens > window 5; 34 in all
    got, ref = greedy_matches(model, ckpt, prompt)
    assert len(ref) == 24 and got == ref, (got, ref)


def test_first_training_step_equals_a_transformers_step(tmp_path):
    loss, hf_loss, norm, hf_norm, later = first_step_parity("gemma3", tmp_path)
    print(f"gemma3 first step: loss {loss:.7f} vs {hf_loss:.7f}, grad norm {norm:.7f} vs {hf_norm:.7f}; then {later}")
    assert abs(loss - hf_loss) <= 1e-5 and abs(norm - hf_norm) <= 1e-5 * max(1.0, hf_norm)
    assert len(later) == 2 and later[-1] < loss


@pytest.mark.parametrize("targets", ["[q_proj,o_proj,gate_proj,down_proj]", "[linear_qkv,linear_fc1]"])
def test_lora_by_hf_and_megatron_names_exports_to_peft(tmp_path_factory, tmp_path, targets):
    root = tmp_path_factory.getbasetemp() / "gemma3_peft"
    diff = lora_export_loads_in_peft("gemma3", root, tmp_path, targets)
    assert diff <= 1e-4, diff


@pytest.mark.parametrize("change, message", [
    ({"attn_logit_softcapping": 50.0}, "attn_logit_softcapping=50.0 is not supported"),
    ({"hidden_activation": "gelu"}, "hidden_activation='gelu' is not supported"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, "rope_scaling=.* is not supported for Gemma 3"),
    ({"use_bidirectional_attention": True}, "use_bidirectional_attention=True is not supported"),
    ({"layer_types": ["sliding_attention", "chunked_attention"]}, "layer_types=.*expected 2 entries"),
    ({"attention_bias": True}, "attention_bias=True is not supported"),
])
def test_unsupported_variants_are_refused_by_name(change, message):
    from plugtron.providers.hf import configs
    from plugtron.providers.hf.errors import UnsupportedArchitecture

    cfg = {**hf_config("gemma3").to_dict(), "architectures": ["Gemma3ForCausalLM"], **change}
    with pytest.raises(UnsupportedArchitecture, match=message):
        configs.family_of_config(cfg).to_provider(cfg)


def test_gemma_rmsnorm_equals_transformers_module():
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm

    from plugtron.providers.gemma3 import GemmaRMSNorm
    from plugtron.providers.gemma3 import Gemma3Provider

    ref = Gemma3RMSNorm(64, eps=1e-6)
    ours = GemmaRMSNorm(Gemma3Provider(), 64, eps=1e-6)
    with torch.no_grad():
        ref.weight.normal_()
        ours.weight.copy_(ref.weight)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(3, 5, 64).to(dtype)
        assert torch.equal(ours(x), ref(x))


@pytest.mark.slow
def test_training_from_the_import_at_tp2_and_pp2_matches_one_process(tmp_path):
    from _family_checks import parallel_losses

    runs = parallel_losses("gemma3", tmp_path)
    print("gemma3 losses:", runs)
    for layout in ("tp", "pp"):
        assert len(runs[layout]) == 2 and all(abs(a - b) <= 1e-5 for a, b in zip(runs[layout], runs["one"])), runs
