"""How many samples each split draws, shared by pretraining (``gpt``) and SFT (``sft``) data."""

from __future__ import annotations

from typing import List


def sample_counts(train) -> List[int]:
    """Samples to draw per split, as Megatron-LM counts them, from ``cfg.train``."""
    gbs = train.global_batch_size
    eval_on = bool(train.eval_interval) and train.eval_iters > 0
    valid = (train.train_iters // train.eval_interval + 1) * train.eval_iters * gbs if eval_on else 0
    return [train.train_iters * gbs, valid, train.eval_iters * gbs]
