"""SDPADotProductAttention (providers/sdpa_attention.py) computes what Megatron's local
DotProductAttention computes, forward and backward, and falls back to it where SDPA would differ."""

from __future__ import annotations

import pytest
import torch

import _mcore_helpers as h

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the local spec's CPU path")

S, B = 16, 2


def _config(heads=4, groups=None, **kw):
    from megatron.core.transformer import TransformerConfig

    return TransformerConfig(num_layers=1, hidden_size=32, num_attention_heads=heads, num_query_groups=groups,
                             attention_dropout=0.0, **kw)


def _pair(config, mask_type):
    from megatron.core.transformer.dot_product_attention import DotProductAttention

    from plugtron.providers.sdpa_attention import SDPADotProductAttention

    args = dict(config=config, layer_number=1, attn_mask_type=mask_type, attention_type="self")
    return DotProductAttention(**args), SDPADotProductAttention(**args)


def _qkv(config, seed=0):
    g = torch.Generator().manual_seed(seed)
    dim = config.kv_channels
    groups = config.num_query_groups
    q = torch.randn(S, B, config.num_attention_heads, dim, generator=g)
    k, v = (torch.randn(S, B, groups, dim, generator=g) for _ in range(2))
    return [t.requires_grad_() for t in (q, k, v)]


def _run(module, qkv, mask):
    out = module(*qkv, mask)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [t.grad.clone() for t in qkv]


@pytest.mark.parametrize("groups", [None, 2])
@pytest.mark.parametrize("given_mask", [False, True])
def test_sdpa_matches_megatron_unfused(groups, given_mask):
    from megatron.core.transformer.enums import AttnMaskType

    with h.single_process():
        config = _config(groups=groups)
        ref, sdpa = _pair(config, AttnMaskType.causal)
        mask = None
        if given_mask:  # a block-diagonal causal mask as packed SFT rows make (True = masked)
            seg = torch.tensor([0] * 6 + [1] * 10)
            causal = torch.ones(S, S, dtype=torch.bool).triu(1)
            mask = ((seg[:, None] != seg[None, :]) | causal).expand(B, 1, S, S)
        out_ref, grads_ref = _run(ref, _qkv(config), mask)
        out, grads = _run(sdpa, _qkv(config), mask)
    assert out.shape == out_ref.shape == (S, B, config.num_attention_heads * config.kv_channels)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-6)


def test_dropout_while_training_uses_megatrons_path(monkeypatch):
    from megatron.core.transformer.enums import AttnMaskType

    with h.single_process():
        config = _config()
        config.attention_dropout = 0.1
        _, sdpa = _pair(config, AttnMaskType.causal)
        called, real = [], torch.nn.functional.scaled_dot_product_attention

        def counting_sdpa(*args, **kwargs):
            called.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting_sdpa)
        sdpa.train()
        sdpa(*_qkv(config), None)
        assert not called  # Megatron's forward (dropout masks from its RNG tracker)
        sdpa.eval()
        sdpa(*_qkv(config), None)
        assert called  # no dropout in eval: SDPA computes the same function


def test_local_spec_uses_sdpa_unless_unfused_is_asked():
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnBackend

    from plugtron.providers.gpt import GPTModelProvider
    from plugtron.providers.sdpa_attention import SDPADotProductAttention

    def core(**kw):
        spec = GPTModelProvider(num_layers=1, hidden_size=32, num_attention_heads=4, transformer_impl="local",
                                **kw).layer_spec()
        return spec.submodules.self_attention.submodules.core_attention

    assert core() is SDPADotProductAttention
    assert core(num_moe_experts=2) is SDPADotProductAttention
    assert core(attention_backend=AttnBackend.unfused) is DotProductAttention
    assert core(attention_backend=AttnBackend.local) is DotProductAttention


# --- RoPE and SwiGLU without copies (providers/unfused_fast_paths.py): bit-for-bit Megatron's -------


def _rope_freqs(s, dim, partial=None):
    inv = 1.0 / (10000 ** (torch.arange(0, partial or dim, 2).float() / (partial or dim)))
    freqs = torch.outer(torch.arange(s).float(), inv)
    return torch.cat((freqs, freqs), -1)[:, None, None, :]


def _fwd_bwd(fn, x, *args, **kw):
    x = x.clone().requires_grad_()
    y = fn(x, *args, **kw)
    y.backward(torch.linspace(-1, 1, y.numel()).view_as(y))
    return y.detach(), x.grad


@pytest.mark.parametrize("mscale", [1.0, 1.3])
def test_rope_fast_path_is_bit_identical(mscale):
    from megatron.core.models.common.embeddings import rope_utils

    from plugtron.providers.unfused_fast_paths import fast_rope_bshd

    original = getattr(rope_utils._apply_rotary_pos_emb_bshd, "original", rope_utils._apply_rotary_pos_emb_bshd)
    fast = fast_rope_bshd(original)
    # q as Megatron hands it over: a strided view of the fused QKV projection's output
    qkv = torch.randn(S, B, 3 * 4 * 8, generator=torch.Generator().manual_seed(1))
    q = lambda t: t[..., : 4 * 8].view(S, B, 4, 8)  # noqa: E731
    ref = _fwd_bwd(lambda t: original(q(t), _rope_freqs(S, 8), mscale=mscale), qkv)
    got = _fwd_bwd(lambda t: fast(q(t), _rope_freqs(S, 8), mscale=mscale), qkv)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


@pytest.mark.parametrize("case", ["interleaved", "partial"])
def test_rope_fast_path_leaves_other_forms_to_megatron(case):
    from megatron.core.models.common.embeddings import rope_utils

    from plugtron.providers.unfused_fast_paths import fast_rope_bshd

    calls = []
    original = getattr(rope_utils._apply_rotary_pos_emb_bshd, "original", rope_utils._apply_rotary_pos_emb_bshd)

    def counting(*args, **kw):
        calls.append(1)
        return original(*args, **kw)

    t = torch.randn(S, B, 4, 8)
    if case == "interleaved":
        out = fast_rope_bshd(counting)(t, _rope_freqs(S, 8), rotary_interleaved=True)
        assert torch.equal(out, original(t, _rope_freqs(S, 8), rotary_interleaved=True))
    else:  # rotary dim 4 of head dim 8 (rotary_percent 0.5)
        out = fast_rope_bshd(counting)(t, _rope_freqs(S, 8, partial=2))
        assert torch.equal(out, original(t, _rope_freqs(S, 8, partial=2)))
    assert calls == [1]


def test_swiglu_fast_path_is_bit_identical():
    import torch.nn.functional as F

    from plugtron.providers.unfused_fast_paths import SwiGLU

    def megatron_glu(x):  # Megatron's MLP.forward glu(): chunk, silu, + glu_linear_offset (0.0), product
        gate, linear = torch.chunk(x, 2, dim=-1)
        return F.silu(gate) * (linear + 0.0)

    x = torch.randn(S, B, 2 * 24, generator=torch.Generator().manual_seed(2))
    ref, got = _fwd_bwd(megatron_glu, x), _fwd_bwd(SwiGLU.apply, x)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


def test_local_spec_mlp_and_its_fallbacks():
    import torch.nn.functional as F
    from megatron.core.transformer import TransformerConfig
    from megatron.core.transformer.mlp import MLP

    from plugtron.providers.gpt import GPTModelProvider
    from plugtron.providers.unfused_fast_paths import SwiGLUMLP, use_fast_mlp

    spec = GPTModelProvider(num_layers=1, hidden_size=32, num_attention_heads=4,
                            transformer_impl="local").layer_spec().submodules.mlp
    assert spec.module is MLP  # so that TransformerLayer hands it its TP group
    with h.single_process():
        for kw, fast in (({}, True), ({"add_bias_linear": True}, False), ({"glu_linear_offset": 1.0}, False),
                         ({"activation_func_clamp_value": 5.0}, False), ({"gated_linear_unit": False}, False)):
            config = TransformerConfig(num_layers=1, hidden_size=32, ffn_hidden_size=64, num_attention_heads=4,
                                       gated_linear_unit=kw.pop("gated_linear_unit", True), activation_func=F.silu,
                                       add_bias_linear=kw.pop("add_bias_linear", False), **kw)
            ref = MLP(config, spec.submodules)
            mlp = MLP(config, spec.submodules)
            mlp.load_state_dict(ref.state_dict())
            assert use_fast_mlp(torch.nn.Sequential(mlp)) == 1 and type(mlp) is SwiGLUMLP
            assert mlp._plain_swiglu() is fast, kw
            outs = []
            for module in (mlp, ref):  # same weights, same input: the same numbers
                x = torch.randn(S, B, 32, generator=torch.Generator().manual_seed(3), requires_grad=True)
                out, _ = module(x)
                (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
                outs.append((out.detach(), x.grad))
            assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1]), kw


def test_built_local_model_uses_the_fast_paths():
    from megatron.core.models.common.embeddings import rope_utils

    from plugtron.providers.gpt import GPTModelProvider
    from plugtron.providers.unfused_fast_paths import SwiGLUMLP

    with h.single_process():
        p = GPTModelProvider(num_layers=2, hidden_size=32, num_attention_heads=4, transformer_impl="local",
                             gated_linear_unit=True, add_bias_linear=False, vocab_size=64, seq_length=S,
                             position_embedding_type="rope", activation_func=torch.nn.functional.silu)
        p.finalize()
        model = p.provide()
    assert [type(layer.mlp) for layer in model.decoder.layers] == [SwiGLUMLP, SwiGLUMLP]
    assert getattr(rope_utils._apply_rotary_pos_emb_bshd, "plugtron_fast_path", False)


# --- torch's fused Adam where Megatron falls back to torch's Adam (core/training/fused_adam.py) -------


class _AdamGroups:
    """Records whether each param group of Megatron's torch Adam uses the fused kernel."""

    def __init__(self):
        self.fused = None

    def on_train_start(self, state):
        from plugtron.training.fused_adam import _torch_adams

        self.fused = [g["fused"] for adam in _torch_adams(state.optimizer) for g in adam.param_groups]


def _tiny_run(overrides, *plugins):
    from helpers import SMALL

    from plugtron.config import load_config
    from plugtron.plugin_manager import PluginManager
    from plugtron.training import train

    pm = PluginManager()
    for plugin in plugins:
        pm.register(type(plugin).__name__.lower(), plugin)
    return train(load_config(None, SMALL + ["train.eval_interval=null", "train.train_iters=6", *overrides]),
                 plugin_manager=pm)


@pytest.mark.parametrize("dist_opt", ["false", "true"])
def test_fused_adam_on_fresh_and_resumed_runs(tmp_path, monkeypatch, dist_opt):
    from plugtron.training import fused_adam

    opt = [f"optimizer.use_distributed_optimizer={dist_opt}"]
    groups = _AdamGroups()
    fused = _tiny_run(opt, groups)
    assert groups.fused and all(f is True for f in groups.fused)
    ck = [f"checkpoint.save={tmp_path}", f"checkpoint.load={tmp_path}"]
    _tiny_run(opt + ck + ["train.exit_interval=3"])
    resumed_groups = _AdamGroups()
    second = _tiny_run(opt + ck, resumed_groups)
    assert all(f is True for f in resumed_groups.fused)  # the load restored the saved options; fused again
    # the per-tensor loop computes the same update to float rounding (not bit for bit)
    monkeypatch.setattr(fused_adam, "ENABLED", False)
    per_tensor_groups = _AdamGroups()
    per_tensor = _tiny_run(opt, per_tensor_groups)
    assert not any(per_tensor_groups.fused)
    torch.testing.assert_close(torch.tensor(fused["losses"]), torch.tensor(per_tensor["losses"]), rtol=1e-5,
                               atol=0)
    assert second["losses"] == fused["losses"][3:]  # resume with the fused kernel is bit-identical
