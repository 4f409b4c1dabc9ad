"""gpt-oss: a tiny random GptOssForCausalLM (attention sinks large enough to matter, sliding layers with
window 5 alternating with full ones, YaRN x4 with an untruncated ramp, biases on attention, router
and experts, top-2 of 4 experts whose gate/up pre-activations pass the clamp limit 7, vocabulary 301)
imports with logits equal to transformers' (fp32) on 16 tokens (past the window), exports bit for bit,
trains (first step's loss and grad norm equal a plain transformers step; three steps), generates 24
tokens greedily as transformers does; EP=2 training and export of its checkpoint are slow tests;
unsupported variants are refused by name."""

import pytest
import torch

import transformers  # noqa: F401  (the test extra installs it; these tests must run, never skip)

from _family_checks import LOGIT_TOL, assert_export_exact, convert, first_step_parity, greedy_matches, logits_diff
from _hf_models import hf_config


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert("gpt_oss", tmp_path_factory.mktemp("gpt_oss"))


def test_import_logits_match_transformers_and_export_is_exact(converted):
    from plugtron.config import from_yaml

    model, hf_dir, ckpt, out = converted
    cfg = from_yaml((ckpt / "iter_0000000" / "run_config.yaml").read_text()).model
    assert type(cfg).__name__ == "GptOssProvider"
    assert (list(cfg.window_size), cfg.window_attn_skip_freq, cfg.position_embedding_type, cfg.softmax_type,
            cfg.yarn_rotary_scaling_factor, cfg.yarn_correction_range_round_to_int) == ([4, 0], 2, "yarn", "learnable",
                                                                                    4.0, False)
    diff = logits_diff(model, ckpt)
    print(f"gpt_oss: max |logit diff| = {diff:.3e}")
    assert diff <= LOGIT_TOL, diff
    assert_export_exact(model, hf_dir, out)


def test_greedy_generation_past_the_window_equals_transformers(converted):
    model, _, ckpt, _ = converted
    prompt = [5, 17, 42, 99, 3, 300, 7, 64, 128, 11]  # 10 tokens > window 5; 34 in all
    got, ref = greedy_matches(model, ckpt, prompt)
    assert len(ref) == 24 and got == ref, (got, ref)


def test_first_training_step_equals_a_transformers_step_and_three_steps_train(tmp_path):
    loss, hf_loss, norm, hf_norm, later = first_step_parity("gpt_oss", tmp_path)
    print(f"gpt_oss first step: loss {loss:.7f} vs {hf_loss:.7f}, grad norm {norm:.7f} vs {hf_norm:.7f}; then {later}")
    assert abs(loss - hf_loss) <= 1e-5 and abs(norm - hf_norm) <= 1e-5 * max(1.0, hf_norm)
    assert len(later) == 2 and later[-1] < loss


@pytest.mark.parametrize("change, message", [
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "attention_factor": 1.2}}, "rope_scaling=.* is not supported"),
    ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling=.* is not supported for gpt-oss"),
    ({"quantization_config": {"quant_method": "mxfp4"}}, "quantization_config=.*Mxfp4Config\\(dequantize=True\\)"),
    ({"layer_types": ["sliding_attention", "chunked_attention"]}, "layer_types=.*expected 2 entries"),
    ({"hidden_act": "gelu"}, "hidden_act='gelu' is not supported"),
])
def test_unsupported_variants_are_refused_by_name(change, message):
    from plugtron.providers.hf import configs
    from plugtron.providers.hf.errors import UnsupportedArchitecture

    cfg = {**hf_config("gpt_oss").to_dict(), "architectures": ["GptOssForCausalLM"], **change}
    with pytest.raises(UnsupportedArchitecture, match=message):
        configs.family_of_config(cfg).to_provider(cfg)


def test_export_refuses_a_provider_gpt_oss_cannot_express():
    from plugtron.providers.gpt_oss import GptOssProvider
    from plugtron.providers.hf.errors import UnsupportedArchitecture
    from plugtron.providers.hf.gpt_oss import gpt_oss_rules

    p = GptOssProvider(num_layers=2, hidden_size=64, num_attention_heads=4, kv_channels=16, num_query_groups=2,
                       num_moe_experts=4, moe_ffn_hidden_size=32, vocab_size=300, glu_linear_offset=0.0)
    with pytest.raises(UnsupportedArchitecture, match="model.glu_linear_offset=0.0: GptOssForCausalLM has 1.0"):
        gpt_oss_rules(p)


def test_biased_expert_mlp_equals_megatrons_expert_forward():
    """The out-of-place expert (providers/expert_bias.py) computes Megatron's routing-weighted expert
    with biases (compared without autograd, where Megatron's in-place add runs) and has a backward."""
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.mlp import MLP

    from plugtron.providers.expert_bias import BiasedExpertMLP
    from plugtron.providers.gpt_oss import GptOssProvider
    from plugtron.providers.hf import megatron_side as ms

    cfg = GptOssProvider(num_layers=1, hidden_size=32, num_attention_heads=4, kv_channels=8, num_query_groups=2,
                         num_moe_experts=2, moe_ffn_hidden_size=24, ffn_hidden_size=24, vocab_size=64,
                         use_cpu_initialization=True)
    cfg.finalize()
    g = torch.Generator().manual_seed(0)
    with ms.megatron_world(1):
        spec = get_gpt_layer_local_spec(num_experts=2, moe_grouped_gemm=False).submodules.mlp.submodules.experts
        subs = spec.submodules if hasattr(spec, "submodules") else spec
        ref, ours = (MLP(cfg, subs, is_expert=True, ffn_hidden_size=24) for _ in range(2))
        with torch.no_grad():
            for p in ref.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        ours.load_state_dict(ref.state_dict())
        ours.__class__ = BiasedExpertMLP
        x, scale = torch.randn(6, 32, generator=g), torch.rand(6, generator=g)
        with torch.no_grad():
            want, _ = ref(x, scale)
        got, bias = ours(x, scale)
        assert bias is None and torch.allclose(got, want, atol=1e-5, rtol=1e-5)
        got.sum().backward()
        assert all(p.grad is not None for p in ours.parameters())
        with pytest.raises(RuntimeError):  # why the stand-in exists: Megatron's in-place add has no backward
            ref(x, scale)[0].sum().backward()


def _tensors(ckpt):
    from plugtron.providers.hf import megatron_side as ms

    with ms.megatron_world(1):
        provider, model = ms.load_model(ckpt)
        return ms.gather(model, provider)


@pytest.mark.slow
def test_expert_parallel_training_and_export_of_its_checkpoint(tmp_path):
    """EP=2 (two gloo processes, two experts each): three fine-tuning steps lose what one process loses; the EP=2-trained checkpoint exports to HF with the
    checkpoint's logits, and re-importing the export gives back every tensor bit for bit."""
    import transformers as T

    from _hf_models import build, megatron_logits, save, tokens
    from helpers import torchrun
    from plugtron.config import load_config
    from plugtron.providers.hf import AutoBridge
    from plugtron.providers.hf import megatron_side as ms
    from plugtron.training import train

    hf = build("gpt_oss", vocab=256, positions=64)
    AutoBridge.import_ckpt(str(save(hf, tmp_path / "hf")), str(tmp_path / "base"))
    toks = tokens(vocab=256)  # (logits at EP=2: tests/test_hf_ep2.py, with the other MoE families)

    common = [f"checkpoint.pretrained_checkpoint={tmp_path / 'base'}", "dataset.mock=true",
              "tokenizer.tokenizer_type=NullTokenizer", "tokenizer.vocab_size=255", "model.seq_length=32",
              "train.micro_batch_size=2", "train.global_batch_size=4", "train.train_iters=3", "train.eval_interval=null",
              "optimizer.clip_grad=0.0", "optimizer.lr=1e-3", "scheduler.lr_warmup_iters=0", "logger.log_interval=1"]
    ref = train(load_config(None, common))["losses"]
    got = torchrun(tmp_path, "ep2", common + ["model.expert_model_parallel_size=2",
                                             f"checkpoint.save={tmp_path / 'ep2-ckpt'}"])["losses"]
    print(f"gpt_oss: EP=1 {ref}, EP=2 {got}")
    assert len(got) == 3 and max(abs(a - b) for a, b in zip(got, ref)) <= 1e-5, (got, ref)

    trained = tmp_path / "ep2-ckpt"
    AutoBridge.export_ckpt(str(trained), str(tmp_path / "exported"))
    exported = T.AutoModelForCausalLM.from_pretrained(tmp_path / "exported", attn_implementation="eager").eval()
    with ms.megatron_world(1):
        _, model = ms.load_model(trained)
        ours = megatron_logits(model, toks)[..., :256]
    with torch.no_grad():
        assert (exported(toks).logits - ours).abs().max().item() <= LOGIT_TOL
    AutoBridge.import_ckpt(str(tmp_path / "exported"), str(tmp_path / "reimported"))
    before, after = _tensors(trained), _tensors(tmp_path / "reimported")
    assert sorted(before) == sorted(after) and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow  # the LoRA path is the other families' (test_peft_families.py); this checks gpt-oss's names
def test_lora_on_attention_exports_to_peft_and_experts_are_refused(tmp_path_factory, tmp_path):
    """LoRA on q/k/v/o (HF names; the projections keep their biases) trains, exports with ``peft
    export-hf`` and loads in ``peft.PeftModel`` with equal logits; the experts' linears are refused
    before the first step, naming what can be adapted."""
    from _family_checks import lora_export_loads_in_peft
    from _peft_fixtures import config
    from plugtron.errors import PluginError
    from plugtron.training import train

    root = tmp_path_factory.getbasetemp() / "gpt_oss_peft"
    diff = lora_export_loads_in_peft("gpt_oss", root, tmp_path, "[q_proj,k_proj,v_proj,o_proj]")
    print(f"gpt_oss LoRA: PeftModel vs plugtron max |logit diff| = {diff:.2e}")
    assert diff <= 1e-5, diff
    with pytest.raises(PluginError, match="'linear_fc1' matches no adaptable module; the model's adaptable "
                                          "modules are linear_proj, linear_qkv"):
        train(config(root, ["train.train_iters=1", f"checkpoint.save={tmp_path / 'experts'}",
                            "peft.target_modules=[linear_fc1]"]))
    assert not (tmp_path / "experts").exists() or not any((tmp_path / "experts").rglob("iter_*"))


def test_tiny_gpt_oss_trains_with_moe_token_drop_padded_to_capacity():
    """The ``moe_token_drop`` plugin on gpt-oss's biased experts: capacity 0.5, expert inputs padded to
    capacity (padding rows carry routing weight 0, so the out-of-place bias adds nothing for them);
    two steps with finite, not exploding losses."""
    import math

    from plugtron.config import load_config
    from plugtron.plugin_manager import PluginManager
    from plugtron.training import train

    pm = PluginManager()
    cfg = load_config(None, ["train.train_iters=2", "train.eval_interval=null", "train.global_batch_size=2",
                             "train.micro_batch_size=2", "model.seq_length=64", "logger.log_interval=1",
                             "scheduler.lr_warmup_iters=1",
                             "moe_token_drop.moe_expert_capacity_factor=0.5",
                             "moe_token_drop.moe_pad_expert_input_to_capacity=true"], recipe="tiny_gpt_oss")
    losses = train(cfg, plugin_manager=pm)["losses"]
    assert "moe_token_drop" in pm.loaded and cfg.model.moe_expert_capacity_factor == 0.5
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0] + 0.5, losses


def test_import_into_tp2_is_refused_before_any_work(tmp_path):
    """gpt-oss imports at TP=1 only (the conversion's TP=2 world would give the biased experts two
    expert-tensor ranks, which Megatron-Core refuses); the error says so and nothing is written."""
    from _hf_models import build, save
    from plugtron.providers.hf import AutoBridge
    from plugtron.providers.hf.errors import ConversionError

    hf_dir = save(build("gpt_oss"), tmp_path / "hf")
    with pytest.raises(ConversionError, match="GptOssForCausalLM imports at TP=1 only"):
        AutoBridge.import_ckpt(str(hf_dir), str(tmp_path / "out"), tensor_model_parallel_size=2)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_tensor_parallel_layouts_keep_one_expert_tensor_rank():
    """The provider's expert_tensor_parallel_size 1 (Bridge's) validates at TP=2 with sequence
    parallelism; asking for two expert-tensor ranks is refused by name before anything is built."""
    from plugtron.config import load_config
    from plugtron.errors import ConfigError

    tp2 = ["model.tensor_model_parallel_size=2", "model.sequence_parallel=true"]
    assert load_config(None, tp2, recipe="tiny_gpt_oss").validate(2).model.expert_tensor_parallel_size == 1
    with pytest.raises(ConfigError, match="ETP==1"):
        load_config(None, tp2 + ["model.expert_tensor_parallel_size=2"], recipe="tiny_gpt_oss").validate(2)
