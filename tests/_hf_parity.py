"""Training parity with ``transformers``: the same model, batches and optimizer, two trainers.

``plugtron_run`` trains an imported checkpoint with ``plugtron.training.train`` and records, per step,
the loss and grad norm it reports and every micro batch its data iterator fed the model (taken at
``forward_step``, so what the model saw). ``hf_run`` trains the Hugging Face model the checkpoint came
from with a plain PyTorch loop over those batches: one token mean over the global batch, AdamW with
Megatron's no-decay rule (biases and 1-D parameters, i.e. norms, are not decayed), no clipping, fp32.
Used in process (TP=1) by test_hf_training_parity.py and under torchrun by _hf_parity_tp2.py.
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence

import torch

LR = 1e-3


def overrides(ckpt, steps: int, weight_decay: float, mbs: int = 2, gbs: int = 4, seq: int = 32) -> List[str]:
    """A constant-lr AdamW run from ``ckpt`` without dropout, clipping (clip_grad far above any
    norm: the norm is still computed and reported) or evaluation."""
    return [f"checkpoint.pretrained_checkpoint={ckpt}", f"train.train_iters={steps}",
            f"train.micro_batch_size={mbs}", f"train.global_batch_size={gbs}", "train.eval_interval=null",
            f"model.seq_length={seq}", f"dataset.sequence_length={seq}", "model.hidden_dropout=0.0",
            "model.attention_dropout=0.0", f"optimizer.lr={LR}", f"optimizer.min_lr={LR}",
            f"optimizer.weight_decay={weight_decay}", "optimizer.adam_beta1=0.9", "optimizer.adam_beta2=0.999",
            "optimizer.adam_eps=1e-8", "optimizer.clip_grad=1e9", "scheduler.lr_decay_style=constant",
            "scheduler.lr_warmup_iters=0", "logger.log_interval=1"]


class StepRecorder:
    """Loss and grad norm of every step, as plugtron reports them to plugins."""

    def __init__(self):
        self.losses: List[float] = []
        self.grad_norms: List[float] = []

    def on_step(self, state, metrics):
        self.losses.append(float(metrics.loss))
        self.grad_norms.append(float(metrics.grad_norm))


def plugtron_run(args: Sequence[str], recipe: str = "tiny"):
    """``(losses, grad_norms, micro batches per step)`` of a plugtron run with ``args``."""
    from plugtron.config import load_config
    from plugtron.plugin_manager import PluginManager
    from plugtron.training import forward as step_module  # where GPTKind looks forward_step up
    from plugtron.training import train

    batches: List[Dict[str, torch.Tensor]] = []
    original = step_module.forward_step

    def recording_forward_step(data_iterator, model):
        def tap():
            batch = next(data_iterator)
            batches.append({k: v.detach().clone() for k, v in batch.items()
                            if k in ("tokens", "labels", "loss_mask", "position_ids")})
            yield batch

        return original(tap(), model)

    rec = StepRecorder()
    pm = PluginManager()
    pm.register("step_recorder", rec)
    cfg = load_config(None, list(args), recipe=recipe)
    step_module.forward_step = recording_forward_step
    try:
        train(cfg, plugin_manager=pm)
    finally:
        step_module.forward_step = original
    assert batches and len(batches) % len(rec.losses) == 0, "no micro batch was recorded"  # the tap is in place
    per_step = len(batches) // len(rec.losses)
    steps = [batches[i * per_step:(i + 1) * per_step] for i in range(len(rec.losses))]
    return rec.losses, rec.grad_norms, steps


def hf_optimizer(model, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, decaying exactly what Megatron decays: not biases, not 1-D parameters (norms)."""
    decay = [p for n, p in model.named_parameters() if p.dim() > 1 and not n.endswith(".bias")]
    plain = [p for n, p in model.named_parameters() if p.dim() <= 1 or n.endswith(".bias")]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8)


def token_mean_loss(model, micro_batches: Sequence[Dict[str, torch.Tensor]]) -> torch.Tensor:
    """Cross-entropy summed over the unmasked tokens of every micro batch, over their count."""
    total = torch.zeros(())
    count = sum(float(b["loss_mask"].sum()) for b in micro_batches)
    for b in micro_batches:
        logits = model(input_ids=b["tokens"], position_ids=b["position_ids"]).logits
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), b["labels"].flatten(), reduction="none")
        total = total + (ce * b["loss_mask"].flatten().float()).sum()
    return total / max(count, 1.0)


def micro_batch_mean_loss(model, micro_batches: Sequence[Dict[str, torch.Tensor]]) -> torch.Tensor:
    """The mean over micro batches of each one's token mean (``model.calculate_per_token_loss=false``)."""
    return sum(token_mean_loss(model, [b]) for b in micro_batches) / len(micro_batches)


def hf_run(model, steps: Sequence[Sequence[Dict[str, torch.Tensor]]], weight_decay: float, objective=token_mean_loss):
    """``(losses, grad_norms)`` of a plain loop over ``steps`` (the recorded micro batches)."""
    model.train()
    opt = hf_optimizer(model, weight_decay)
    losses, norms = [], []
    for micro_batches in steps:
        opt.zero_grad(set_to_none=True)
        loss = objective(model, micro_batches)
        loss.backward()
        sq = sum(float(p.grad.double().pow(2).sum()) for p in model.parameters() if p.grad is not None)
        losses.append(float(loss))
        norms.append(math.sqrt(sq))
        opt.step()
    return losses, norms


def held_out_tokens(vocab: int, seed: int = 7) -> torch.Tensor:
    """Random tokens no training batch was made from (the bundled corpus is text)."""
    return torch.randint(0, vocab, (2, 24), generator=torch.Generator().manual_seed(seed))


def held_out_logits(model, vocab: int) -> torch.Tensor:
    """A Hugging Face model's logits on ``held_out_tokens``."""
    model.eval()
    with torch.no_grad():
        return model(held_out_tokens(vocab)).logits


def checkpoint_logits(ckpt, vocab: int) -> torch.Tensor:
    """The logits of the model a plugtron checkpoint holds (Megatron's forward, TP=1), real vocabulary."""
    from _hf_models import megatron_logits
    from plugtron.providers.hf import megatron_side as ms

    with ms.megatron_world(1):
        _, model = ms.load_model(ckpt)
        return megatron_logits(model, held_out_tokens(vocab))[..., :vocab]


def export_matches(ckpt, out, hf_trained, vocab: int, weights_tol: float) -> None:
    """Export ``ckpt`` to ``out``: its logits equal the trained checkpoint's within 1e-5 (export
    gives the model plugtron trained, padding dropped) and the HF-loop model's within ``weights_tol``."""
    import transformers as T

    from plugtron.providers.hf import AutoBridge

    AutoBridge.export_ckpt(str(ckpt), str(out))
    exported = held_out_logits(T.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager"), vocab)
    to_trained = (exported - checkpoint_logits(ckpt, vocab)).abs().max().item()
    to_hf = (exported - held_out_logits(hf_trained, vocab)).abs().max().item()
    print(f"exported vs plugtron-trained max |logit diff| {to_trained:.2e}, vs HF-trained {to_hf:.2e}")
    assert to_trained <= 1e-5 and to_hf <= weights_tol, (to_trained, to_hf)


def worst(a: Sequence[float], b: Sequence[float]) -> float:
    assert len(a) == len(b), (len(a), len(b))
    return max(abs(x - y) for x, y in zip(a, b))
