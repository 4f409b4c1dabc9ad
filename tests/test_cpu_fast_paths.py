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
