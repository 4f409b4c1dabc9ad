"""Padding rows of the vocabulary never change the function (``plugtron.providers.vocab_padding``):
their logits are the dtype's lowest value on every tensor-parallel shard, the loss and gradients
are the unpadded model's, and a checkpoint resumes at another padding with the same losses."""

import types

import pytest
import torch

from plugtron.config import load_config
from plugtron.training import train


@pytest.mark.parametrize("rank, width, want", [
    (0, 256, None),                 # TP=2, vocab 300 of 512 rows: rank 0's shard is all real
    (1, 256, slice(44, 256)),       # rank 1 holds rows 256..511: 256..299 real
    (0, 512, slice(300, 512)),      # gathered logits (generation): global columns
])
def test_padding_columns_of_each_shard(monkeypatch, rank, width, want):
    from megatron.core import parallel_state as ps

    from plugtron.providers.vocab_padding import padding_columns

    monkeypatch.setattr(ps, "get_tensor_model_parallel_rank", lambda: rank)
    layer = types.SimpleNamespace(output_size_per_partition=256, output_size=512)
    assert padding_columns(layer, width, 300) == want


def test_padded_logits_loss_and_gradients_are_the_unpadded_models():
    from plugtron.providers.gpt import GPTModelProvider
    from plugtron.providers.hf import megatron_side as ms

    vocab = 250
    provider = GPTModelProvider(num_layers=1, hidden_size=32, num_attention_heads=4, seq_length=16, vocab_size=vocab,
                                make_vocab_size_divisible_by=128, share_embeddings_and_output_weights=False,
                                transformer_impl="local", hidden_dropout=0.0, attention_dropout=0.0)
    toks = torch.randint(0, vocab, (2, 16), generator=torch.Generator().manual_seed(0))
    pos = torch.arange(16).expand_as(toks)
    with ms.megatron_world(1):
        _, model = ms.build_model(provider, 1)
        with torch.no_grad():
            model.output_layer.weight[vocab:] = 1.0  # padding rows that would dominate every softmax
        logits = model(toks, pos, None)
        assert logits.shape[-1] == 256 and (logits[..., vocab:] == torch.finfo(logits.dtype).min).all()
        labels = torch.roll(toks, -1, 1)
        loss = model(toks, pos, None, labels=labels).mean()
        want = torch.nn.functional.cross_entropy(logits[..., :vocab].flatten(0, 1), labels.flatten())
        assert abs(loss.item() - want.item()) <= 1e-6, (loss.item(), want.item())
        loss.backward()
        grad = model.output_layer.weight.grad
        assert grad[vocab:].abs().max() == 0 and grad[:vocab].abs().max() > 0


SMALL = ["model.num_layers=2", "model.hidden_size=64", "model.seq_length=64", "dataset.sequence_length=64",
         "train.micro_batch_size=4", "train.global_batch_size=4", "scheduler.lr_warmup_iters=1",
         "logger.log_interval=1", "train.eval_interval=null"]


@pytest.mark.parametrize("distributed_optimizer", [False, True])
def test_resume_at_another_padding_continues_the_same_run(tmp_path, distributed_optimizer):
    """Saved with 320 rows (257 padded to 64), resumed with 384 (to 128), optimizer state included:
    the same losses as a resume at the saved padding."""
    base = SMALL + [f"optimizer.use_distributed_optimizer={str(distributed_optimizer).lower()}"]
    train(load_config(None, base + ["train.train_iters=3", f"checkpoint.save={tmp_path}",
                                    "model.make_vocab_size_divisible_by=64"]))
    more = base + ["train.train_iters=5", f"checkpoint.load={tmp_path}", "scheduler.override_opt_param_scheduler=true"]
    same = train(load_config(None, more + ["model.make_vocab_size_divisible_by=64"]))["losses"]
    other = train(load_config(None, more + ["model.make_vocab_size_divisible_by=128"]))["losses"]
    assert len(same) == 2 and max(abs(a - b) for a, b in zip(same, other)) <= 1e-6, (same, other)


def test_padding_of_an_imported_checkpoint_may_be_overridden(tmp_path):
    """``make_vocab_size_divisible_by`` comes from the checkpoint unless the user sets it (then no
    'contradicts the checkpoint' error: it is a layout choice, not architecture)."""
    import transformers  # noqa: F401

    from _hf_models import build, save
    from plugtron.providers.hf import AutoBridge

    AutoBridge.import_ckpt(str(save(build("llama", vocab=257), tmp_path / "hf")), str(tmp_path / "ckpt"))
    ck = f"checkpoint.pretrained_checkpoint={tmp_path / 'ckpt'}"
    assert load_config(None, [ck]).model.make_vocab_size_divisible_by == 128  # the import's (257 -> 384 rows)
    cfg = load_config(None, [ck, "model.make_vocab_size_divisible_by=8"])
    assert cfg.model.make_vocab_size_divisible_by == 8 and cfg.model.padded_vocab_size(257) == 264


def test_the_tiny_recipe_starts_at_the_loss_the_readme_states(tmp_path):
    """257 byte ids padded to 320 rows: the first loss is the unpadded model's (it was 5.705, about
    ln 320, while the padding rows took part in the softmax)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    stated = float(re.search(r"The first loss of the tiny recipe is ([0-9.]+)", readme).group(1))
    losses = train(load_config(None, ["train.train_iters=1", "scheduler.lr_warmup_iters=0", "train.eval_interval=null",
                                      f"checkpoint.save={tmp_path}"]))["losses"]
    assert abs(losses[0] - stated) < 0.005, (losses[0], stated)
