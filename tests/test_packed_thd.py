"""Packed SFT rows in the training step: with Transformer Engine layers the step passes Megatron's
``PackedSeqParams`` (THD, the row's cu_seqlens) and no s x s mask; with the local spec (CPU) it passes
the block-diagonal mask as before. The model is a recording fake; TE's presence is faked."""

import types

import numpy
import pytest
import torch

from plugtron.data.batches import collate
from plugtron.data.sft import make_sample
from plugtron.training import step

SEQ = 32


def _packed_batch():
    # three examples of 7, 12 and 5 tokens (6, 11, 4 positions each) and 11 positions of padding
    examples = [(numpy.arange(1, 8), numpy.ones(7)), (numpy.arange(1, 13), numpy.ones(12)),
                (numpy.arange(1, 6), numpy.ones(5))]
    return collate([make_sample(examples, SEQ, eod=0, packed=True)])


class RecordingModel:
    """Stands in for the DDP-wrapped GPTModel: records its call, returns per-token losses."""

    def __init__(self, transformer_impl):
        self.config = types.SimpleNamespace(transformer_impl=transformer_impl)
        self.calls = []

    def __call__(self, tokens, position_ids, attention_mask, labels=None, packed_seq_params=None):
        self.calls.append(dict(tokens=tokens, attention_mask=attention_mask, packed_seq_params=packed_seq_params))
        return torch.zeros(tokens.shape, dtype=torch.float32)


def _fake_te(monkeypatch, present: bool):
    import plugtron.providers.gpt as gpt

    monkeypatch.setattr(gpt, "te_available", lambda: present)


def test_collate_carries_the_row_boundaries():
    b = _packed_batch()
    assert b["cu_seqlens"].tolist() == [0, 6, 17, 21, 32] and b["cu_seqlens"].dtype == torch.int32
    assert b["max_seqlen"] == 11  # the padding tail (11 positions) ties with the longest example
    assert b["attention_mask"].shape == (1, 1, SEQ, SEQ)


def test_te_layers_get_thd_packed_seq_params(monkeypatch):
    _fake_te(monkeypatch, True)
    batch, model = _packed_batch(), RecordingModel("transformer_engine")
    output, loss_func = step.forward_step(iter([batch]), model)
    (call,) = model.calls
    p = call["packed_seq_params"]
    assert call["attention_mask"] is None  # TE's THD attention reads cu_seqlens, not a mask
    assert p.qkv_format == "thd"
    assert p.cu_seqlens_q.tolist() == p.cu_seqlens_kv.tolist() == [0, 6, 17, 21, 32]
    assert p.cu_seqlens_q.dtype == torch.int32
    assert p.max_seqlen_q == p.max_seqlen_kv == 11
    loss, _ = loss_func(output)
    assert float(loss) == 0.0


@pytest.mark.parametrize("impl,te", [("local", True), ("transformer_engine", False), ("local", False)])
def test_local_layers_keep_the_block_diagonal_mask(monkeypatch, impl, te):
    _fake_te(monkeypatch, te)
    batch, model = _packed_batch(), RecordingModel(impl)
    step.forward_step(iter([batch]), model)
    (call,) = model.calls
    assert call["packed_seq_params"] is None
    assert torch.equal(call["attention_mask"], batch["attention_mask"])


def test_unpacked_batches_never_get_packed_seq_params(monkeypatch):
    _fake_te(monkeypatch, True)
    sample = make_sample([(numpy.arange(1, 8), numpy.ones(7))], SEQ, eod=0, packed=False)
    batch, model = collate([sample, sample]), RecordingModel("transformer_engine")
    assert "cu_seqlens" not in batch
    step.forward_step(iter([batch]), model)
    assert model.calls[0]["packed_seq_params"] is None


def test_local_attention_still_refuses_packed_seq_params():
    """Megatron's own guard, the reason the local path keeps the mask: a clear assertion, not wrong math."""
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnMaskType
    from megatron.core.transformer import TransformerConfig

    from plugtron.data.sft import packed_seq_params
    from tests._mcore_helpers import single_process

    with single_process():
        cfg = TransformerConfig(num_layers=1, hidden_size=16, num_attention_heads=2)
        attn = DotProductAttention(cfg, layer_number=1, attn_mask_type=AttnMaskType.causal, attention_type="self")
        q = torch.zeros(8, 1, 2, 8)
        with pytest.raises(AssertionError, match="Packed sequence is not supported by DotProductAttention"):
            attn(q, q, q, None, packed_seq_params=packed_seq_params(torch.tensor([0, 3, 8])))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _losses_by_example(model, sample, packed, device):
    """{example key: its mean answer loss} for one dataset row (packed: several examples)."""
    tokens, labels = sample["tokens"][None].to(device), sample["labels"][None].to(device)
    mask = sample["attention_mask"][None].to(device) if packed else None
    with torch.no_grad():
        loss = model(tokens, sample["position_ids"][None].to(device), mask, labels=labels)[0].float().cpu()
    cu = sample["cu_seqlens"].tolist() if packed else [0, len(sample["tokens"])]
    out = {}
    for a, b in zip(cu, cu[1:]):
        m = sample["loss_mask"][a:b]
        if m.sum() > 0:
            # an example is named by its first tokens and the labels it learns (same packed or not)
            key = tuple(sample["tokens"][a:b][:6].tolist()) + tuple(sample["labels"][a:b][m > 0].tolist())
            out[key] = float((loss[a:b] * m).sum() / m.sum())
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_packed_rows_through_sdpa_attention_match_unpacked(tmp_path, device):
    """The attention a CUDA run without TE uses (SDPA in the local spec) keeps packed examples apart:
    per-example losses of packed rows equal the unpacked ones (fp32)."""
    import _mcore_helpers as h
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from test_sft import BYTES, SEQ as SFT_SEQ, make_cfg, write_root

    from plugtron.data import build_datasets
    from plugtron.providers.gpt import with_sdpa_attention

    root = write_root(tmp_path / "e", n=(16, 0, 0))
    unpacked = build_datasets(make_cfg(root, train_iters=4, do_validation=False, do_test=False), BYTES)[0]
    packed = build_datasets(make_cfg(root, train_iters=4, mbs=1, packed=True, do_validation=False, do_test=False),
                            BYTES)[0]
    with h.single_process():
        spec = with_sdpa_attention(get_gpt_layer_local_spec())
        model = GPTModel(config=h.tiny_gpt_config(), transformer_layer_spec=spec, vocab_size=320,
                         max_sequence_length=SFT_SEQ, position_embedding_type="rope").to(device).eval()
        assert type(model.decoder.layers[0].self_attention.core_attention).__name__ == "SDPADotProductAttention"
        ref, got = {}, {}
        for k in range(unpacked.n):
            ref.update(_losses_by_example(model, unpacked[k], False, device))
        for r in range(packed.n):
            got.update(_losses_by_example(model, packed[r], True, device))
    assert len(ref) == 16 and set(got) == set(ref)
    worst = max(abs(got[k] - ref[k]) for k in ref)
    assert worst < 1e-4, worst  # (fails when the packed rows' mask is dropped: checked)
    assert max(ref.values()) - min(ref.values()) > 1e-3  # per-example losses differ: the check has teeth
