"""Providers: the name registry (YAML/CLI pick a class, never a module), family defaults and
presets, T5 trainable on CPU, Mamba's pattern logic and its clear error without kernels."""

import dataclasses
from pathlib import Path

import pytest
import torch

from plugtron.config import ConfigContainer, from_yaml, load_config, to_yaml
from plugtron.errors import ConfigError, UnsupportedOnThisMachine
from plugtron.providers.registry import names as provider_names, provider_class, provider_name

PROVIDERS = provider_names()

DOCS = Path(__file__).parent.parent / "docs" / "providers.md"


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_every_registered_provider_round_trips_through_yaml(name):
    cls = provider_class(name)
    assert provider_name(cls) == name
    cfg = ConfigContainer(model=cls())
    back = from_yaml(to_yaml(cfg))
    assert type(back.model) is cls and back == cfg


def test_provider_only_fields_are_documented():
    from megatron.core.transformer import TransformerConfig

    base = {f.name for f in dataclasses.fields(TransformerConfig)}
    text = DOCS.read_text()
    missing = sorted({f.name for n in PROVIDERS for f in dataclasses.fields(provider_class(n))
                      if f.name not in base and f"`{f.name}`" not in text})
    assert not missing, f"document these provider fields in {DOCS}: {missing}"


def test_family_defaults_and_presets():
    from megatron.core.activations import fast_gelu

    from plugtron.providers import GPT2_Small, Llama3_8B, Llama31_8B, Mixtral_8x7B, Qwen25_0_5B

    l3 = Llama3_8B()
    assert (l3.num_layers, l3.hidden_size, l3.num_query_groups, l3.ffn_hidden_size, l3.rotary_base) == (32, 4096, 8, 14336, 500000)
    assert l3.normalization == "RMSNorm" and l3.gated_linear_unit and not l3.add_bias_linear and not l3.rope_scaling
    assert Llama31_8B().rope_scaling and Llama31_8B().rope_scaling_factor == 8.0
    q = Qwen25_0_5B()
    assert q.add_qkv_bias and not q.add_bias_linear and q.share_embeddings_and_output_weights and q.layernorm_epsilon == 1e-6
    mx = Mixtral_8x7B()
    assert (mx.num_moe_experts, mx.moe_router_topk, mx.moe_router_pre_softmax) == (8, 2, False)
    g = GPT2_Small()
    assert g.position_embedding_type == "learned_absolute" and g.normalization == "LayerNorm"
    assert g.activation_func is fast_gelu and g.add_bias_linear and g.share_embeddings_and_output_weights
    for preset in (l3, q, mx, g):
        preset.finalize()  # Megatron's own validation accepts every preset


def test_yaml_and_cli_pick_a_provider(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  provider: llama3_8b\n  num_layers: 2\n")
    cfg = load_config(str(path), ["model.expert_model_parallel_size=1"])
    # naming a different provider starts from its defaults, not from the recipe's model
    assert type(cfg.model).__name__ == "Llama3_8B" and cfg.model.num_layers == 2 and cfg.model.hidden_size == 4096
    cfg = load_config(None, ["model.num_layers=3"])
    assert type(cfg.model).__name__ == "GPTModelProvider"
    with pytest.raises(ConfigError, match=r"model.provider: unknown provider 'lama3_8b' \(did you mean 'llama3_8b'\?\)"):
        load_config(None, ["model.provider=lama3_8b"])
    with pytest.raises(ConfigError, match=r"model.num_moe_expert: unknown key \(did you mean 'num_moe_experts'\?\)"):
        load_config(None, ["model.provider=mixtral", "model.num_moe_expert=4"])
    with pytest.raises(ConfigError, match="unknown provider 'os:system'"):
        load_config(None, ["model.provider=os:system"])


def _span_corruption(vocab, batch, enc_len, n_spans, span, sentinel0, seed=0):
    """Tokens with ``n_spans`` spans replaced by sentinels (encoder), and sentinel+span targets."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(1, sentinel0, (batch, enc_len + n_spans * (span - 1)), generator=g)
    enc, dec = [], []
    for row in text:
        e, d, i = [], [], 0
        starts = sorted(torch.randperm(len(row) // span - 1, generator=g)[:n_spans].tolist())
        for k, s in enumerate(starts):
            s *= span
            e += row[i:s].tolist() + [sentinel0 + k]
            d += [sentinel0 + k] + row[s:s + span].tolist()
            i = s + span
        e += row[i:].tolist()
        enc.append(e[:enc_len])
        dec.append(d)
    enc, dec = torch.tensor(enc), torch.tensor(dec)
    dec_in = torch.cat([torch.zeros(batch, 1, dtype=torch.long), dec[:, :-1]], 1)  # 0 = BOS
    return enc, dec_in, dec


def test_t5_trains_on_cpu_with_span_corruption():
    from _mcore_helpers import single_process

    from plugtron.providers import T5ModelProvider

    p = T5ModelProvider(num_layers=2, encoder_num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=128,
                        vocab_size=120, seq_length=32, seq_length_dec=16, hidden_dropout=0.0, attention_dropout=0.0,
                        use_cpu_initialization=True, transformer_impl="local", make_vocab_size_divisible_by=8)
    with single_process():
        p.finalize()
        model = p.provide()
        enc, dec_in, labels = _span_corruption(120, 4, 32, 4, 3, sentinel0=100)
        b, se, sd = enc.shape[0], enc.shape[1], dec_in.shape[1]
        enc_mask = torch.zeros(b, 1, se, se, dtype=torch.bool)  # True = masked out; no padding here
        cross_mask = torch.zeros(b, 1, sd, se, dtype=torch.bool)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for _ in range(15):
            loss = model(enc, dec_in, enc_mask, None, cross_mask, lm_labels=labels).float().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses[0] > 4.0 and losses[-1] < 0.5 * losses[0], losses


def test_plugtron_train_accepts_t5_and_names_its_limits():
    """`plugtron train` trains T5 (tests/test_t5_training.py); what it does not support is a clear error."""
    base = ["model.provider=t5", "model.num_layers=2", "model.hidden_size=64", "model.num_attention_heads=4",
            "model.seq_length=128", "dataset.sequence_length=128", "model.seq_length_dec=64"]
    cfg = load_config(None, base).validate()
    assert cfg.model.vocab_size == 257 + cfg.model.num_sentinel_tokens
    with pytest.raises(ConfigError, match="context_parallel_size: 2; not supported for T5"):
        load_config(None, base + ["model.context_parallel_size=2"]).validate(world_size=2)


def test_mamba_pattern_logic_and_clear_error_without_kernels():
    base = ["model.provider=mamba", "model.num_layers=4", "model.hidden_size=64", "model.num_attention_heads=4",
            "model.seq_length=128"]
    cfg = load_config(None, base + ["model.hybrid_override_pattern=M*M-"]).validate()
    assert cfg.model.layer_pattern() == ["M", "*", "M", "-"]
    cfg = load_config(None, base + ["model.num_layers=8", "model.hybrid_attention_ratio=0.25",
                                    "model.hybrid_mlp_ratio=0.25"]).validate()
    assert cfg.model.layer_pattern().count("*") == 2 and cfg.model.layer_pattern().count("-") == 2
    with pytest.raises(ConfigError, match="wrong length"):
        load_config(None, base + ["model.hybrid_override_pattern=M*M"]).validate()
    with pytest.raises(ConfigError, match="'X' is not one of"):
        load_config(None, base + ["model.hybrid_override_pattern=M*MX"]).validate()
    with pytest.raises(ConfigError, match="must not exceed 1"):
        load_config(None, base + ["model.hybrid_attention_ratio=0.7", "model.hybrid_mlp_ratio=0.5"]).validate()
    from plugtron.providers.mamba import mamba_kernels_missing

    if mamba_kernels_missing() is not None:
        with pytest.raises(UnsupportedOnThisMachine, match="mamba_ssm CUDA kernels"):
            cfg.model.provide()


GUIDE_PARALLELISM = (
    "tensor_model_parallel_size pipeline_model_parallel_size virtual_pipeline_model_parallel_size "
    "microbatch_group_size_per_vp_stage num_layers_in_first_pipeline_stage num_layers_in_last_pipeline_stage "
    "context_parallel_size sequence_parallel expert_model_parallel_size expert_tensor_parallel_size "
    "pipeline_model_parallel_layout pipeline_model_parallel_comm_backend pipeline_dtype "
    "encoder_tensor_model_parallel_size encoder_pipeline_model_parallel_size "
    "account_for_embedding_in_pipeline_split account_for_loss_in_pipeline_split use_te_rng_tracker"
).split()


@pytest.mark.parametrize("name", ["gpt", "llama", "mixtral", "t5"])
def test_guide_parallelism_fields_live_on_the_provider(name):
    from plugtron.config.converter import settable_fields

    assert not set(GUIDE_PARALLELISM) - set(settable_fields(provider_class(name)))
    with pytest.raises(ConfigError, match="no separate encoder parallelism"):
        load_config(None, ["model.encoder_pipeline_model_parallel_size=2"]).validate()
