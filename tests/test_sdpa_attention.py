"""SDPADotProductAttention (torch SDPA inside Megatron's local spec, on CPU and CUDA) computes what
Megatron's DotProductAttention computes: outputs and gradients, causal, masked and grouped-query."""

import pytest
import torch

from tests._mcore_helpers import single_process

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _config(dtype, window=None):
    from megatron.core.transformer import TransformerConfig

    return TransformerConfig(num_layers=1, hidden_size=64, num_attention_heads=8, num_query_groups=2,
                             kv_channels=8, attention_dropout=0.0, bf16=dtype == torch.bfloat16,
                             params_dtype=dtype, window_size=window)


def _pair(dtype, mask_type, window=None):
    from megatron.core.transformer.dot_product_attention import DotProductAttention

    from plugtron.providers.sdpa_attention import SDPADotProductAttention

    cfg = _config(dtype, window)
    kw = dict(config=cfg, layer_number=1, attn_mask_type=mask_type, attention_type="self")
    return DotProductAttention(**kw), SDPADotProductAttention(**kw)


def _qkv(device, dtype, s=16, b=2):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(s, b, 8, 8, generator=g)
    k = torch.randn(s, b, 2, 8, generator=g)
    v = torch.randn(s, b, 2, 8, generator=g)
    return [t.to(device=device, dtype=dtype).requires_grad_() for t in (q, k, v)]


def _run(module, qkv, mask):
    out = module(*qkv, mask)
    grads = torch.autograd.grad(out.float().square().sum(), qkv)
    return out, grads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("masked", [False, True], ids=["causal", "block-diagonal mask"])
def test_sdpa_matches_megatron_attention(device, masked):
    from megatron.core.transformer.enums import AttnMaskType

    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=3e-2, rtol=3e-2)
    with single_process():
        ref, sdpa = _pair(dtype, AttnMaskType.causal)
        mask = None
        if masked:  # two packed examples of 6 and 10 tokens: True = masked (Megatron's convention)
            seg = torch.tensor([0] * 6 + [1] * 10)
            mask = ((seg[:, None] != seg[None, :]) | torch.ones(16, 16, dtype=torch.bool).triu(1))
            mask = mask.expand(2, 1, 16, 16).to(device)
        qkv_a, qkv_b = _qkv(device, dtype), _qkv(device, dtype)
        out_a, grads_a = _run(ref, qkv_a, mask)
        out_b, grads_b = _run(sdpa, qkv_b, mask)
    assert out_b.shape == out_a.shape == (16, 2, 64)
    torch.testing.assert_close(out_b, out_a, **tol)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(gb, ga, **tol)


def test_sliding_window_takes_sdpa_with_megatrons_band(monkeypatch):
    """Mistral/Gemma 3 sliding-window layers: SDPA with the band mask equals Megatron's window softmax
    (query i sees keys i-4..i), outputs and gradients; SDPA is really the path taken."""
    from megatron.core.transformer.enums import AttnMaskType

    from plugtron.providers import sdpa_attention

    calls = []
    real = sdpa_attention.F.scaled_dot_product_attention
    monkeypatch.setattr(sdpa_attention.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    with single_process():
        ref, sdpa = _pair(torch.float32, AttnMaskType.causal, window=(4, 0))
        out_a, grads_a = _run(ref, _qkv("cpu", torch.float32), None)
        out_b, grads_b = _run(sdpa, _qkv("cpu", torch.float32), None)
        full, _ = _run(_pair(torch.float32, AttnMaskType.causal)[1], _qkv("cpu", torch.float32), None)
    assert calls  # the SDPA path, not Megatron's fallback
    torch.testing.assert_close(out_b, out_a, atol=1e-5, rtol=1e-5)
    for ga, gb in zip(grads_a, grads_b):
        torch.testing.assert_close(gb, ga, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out_b[8:], full[8:], atol=1e-3)  # the window matters past its length


def test_spec_swap_on_cpu_and_cuda(monkeypatch):
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnBackend

    from plugtron.providers.gpt import GPTModelProvider, with_sdpa_attention
    from plugtron.providers.sdpa_attention import SDPADotProductAttention

    p = GPTModelProvider(num_layers=1, hidden_size=64, num_attention_heads=4, transformer_impl="local")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert p.layer_spec().submodules.self_attention.submodules.core_attention is SDPADotProductAttention
    unfused = GPTModelProvider(num_layers=1, hidden_size=64, num_attention_heads=4, transformer_impl="local",
                               attention_backend=AttnBackend.unfused)
    assert unfused.layer_spec().submodules.self_attention.submodules.core_attention is DotProductAttention
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert p.layer_spec().submodules.self_attention.submodules.core_attention is SDPADotProductAttention
    spec = with_sdpa_attention(p.layer_spec())  # idempotent
    assert spec.submodules.self_attention.submodules.core_attention is SDPADotProductAttention
