"""Phi-3 with Phi-4-mini's shape: a tiny random Phi3ForCausalLM (fused qkv_proj and gate_up_proj,
grouped-query attention, RoPE on 3/4 of each head with LongRoPE scaling, tied embeddings, a sliding
window of 6, vocabulary 301) imports with logits equal to transformers' (fp32) below and beyond the
original context, exports bit for bit, trains (first step's loss and grad norm equal a plain
transformers step), generates greedily as transformers does, and its LoRA adapters (by HF names,
fused qkv_proj included, and Megatron names) load in peft; other RoPE scalings are refused."""

import pytest

import transformers  # noqa: F401  (the test extra installs it; these tests must run, never skip)

from _family_checks import (LOGIT_TOL, VOCAB, assert_export_exact, convert, first_step_parity, greedy_matches,
                            lora_export_loads_in_peft, logits_diff)
from _hf_models import hf_config, tokens


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert("phi3", tmp_path_factory.mktemp("phi3"))


def test_import_logits_match_transformers_and_export_is_exact(converted):
    from plugtron.config import from_yaml

    model, hf_dir, ckpt, out = converted
    cfg = from_yaml((ckpt / "iter_0000000" / "run_config.yaml").read_text()).model
    assert type(cfg).__name__ == "Phi3Provider" and cfg.rotary_percent == 0.75 and list(cfg.window_size) == [5, 0]
    assert cfg.rope_original_max_position_embeddings == 40 and len(cfg.rope_long_factor) == 6
    diff = logits_diff(model, ckpt)  # 16 tokens: LongRoPE's short factors
    long = logits_diff(model, ckpt, tokens(vocab=VOCAB, seq=48))  # beyond the original 40: the long factors
    print(f"phi3: max |logit diff| = {diff:.3e} (16 tokens), {long:.3e} (48 tokens)")
    assert diff <= LOGIT_TOL and long <= LOGIT_TOL, (diff, long)
    assert_export_exact(model, hf_dir, out)


def test_greedy_generation_equals_transformers(converted):
    model, _, ckpt, _ = converted
    got, ref = greedy_matches(model, ckpt, [5, 17, 42, 99, 3, 300, 7, 64])
    assert len(ref) == 24 and got == ref, (got, ref)


def test_first_training_step_equals_a_transformers_step(tmp_path):
    loss, hf_loss, norm, hf_norm, later = first_step_parity("phi3", tmp_path)
    print(f"phi3 first step: loss {loss:.7f} vs {hf_loss:.7f}, grad norm {norm:.7f} vs {hf_norm:.7f}; then {later}")
    assert abs(loss - hf_loss) <= 1e-5 and abs(norm - hf_norm) <= 1e-5 * max(1.0, hf_norm)
    assert len(later) == 2 and later[-1] < loss


@pytest.mark.parametrize("targets", ["[qkv_proj,o_proj,gate_up_proj,down_proj]", "[linear_qkv,linear_fc2]"])
def test_lora_by_hf_and_megatron_names_exports_to_peft(tmp_path_factory, tmp_path, targets):
    diff = lora_export_loads_in_peft("phi3", tmp_path_factory.getbasetemp() / "phi3_peft", tmp_path, targets)
    assert diff <= 1e-4, diff


@pytest.mark.parametrize("change, message", [
    ({"rope_scaling": {"type": "yarn", "factor": 2.0}}, "rope_scaling=.* is not supported for Phi-3 \\(only null or LongRoPE"),
    ({"rope_scaling": {"type": "longrope", "long_factor": [1.0] * 6, "short_factor": [1.0] * 6, "mscale": 2}},
     "rope_scaling=.* is not supported for Phi-3"),
    ({"hidden_act": "gelu"}, "hidden_act='gelu' is not supported"),
    ({"partial_rotary_factor": 1.5}, "partial_rotary_factor=1.5: expected a number in"),
])
def test_unsupported_variants_are_refused_by_name(change, message):
    from plugtron.providers.hf import configs
    from plugtron.providers.hf.errors import UnsupportedArchitecture

    cfg = {**hf_config("phi3").to_dict(), "architectures": ["Phi3ForCausalLM"], **change}
    with pytest.raises(UnsupportedArchitecture, match=message):
        configs.family_of_config(cfg).to_provider(cfg)


@pytest.mark.slow
def test_training_from_the_import_at_tp2_and_pp2_matches_one_process(tmp_path):
    from _family_checks import parallel_losses

    runs = parallel_losses("phi3", tmp_path)
    print("phi3 losses:", runs)
    for layout in ("tp", "pp"):
        assert len(runs[layout]) == 2 and all(abs(a - b) <= 1e-5 for a, b in zip(runs[layout], runs["one"])), runs
