"""Deterministic micro batches for data-parallel training and a fixed evaluation window.

Global batch k of a run covers dataset samples ``[k*gbs, (k+1)*gbs)`` (modulo the dataset length, so
a short split cycles); data-parallel rank r takes the contiguous r-th ``1/dp_size`` share of it and
hands it out ``micro_batch_size`` samples at a time. Which samples a step sees therefore depends only
on ``consumed_samples``: a resumed run continues exactly where the stopped one left off, and the
shares of all ranks concatenate to the global batch a single rank would see. The randomness lives in
Megatron's shuffle index (seeded by ``dataset.random_seed``), not here. ``OnDevice`` moves each
micro batch to the training device as the schedule pulls it.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence

import torch

from plugtron.errors import ConfigError, DataError

_KEYS = {"tokens": torch.int64, "labels": torch.int64, "loss_mask": torch.float32, "position_ids": torch.int64}


def collate(samples: Sequence[Dict]) -> Dict[str, Optional[torch.Tensor]]:
    """Stack Megatron sample dicts into a micro batch; extra keys (BlendedDataset's ``dataset_id``)
    are dropped. ``attention_mask`` is ``[mbs, 1, s, s]`` bool (True = masked) when the dataset makes
    one (``reset_attention_mask``, packed SFT rows), else ``None`` and the model applies its causal mask.
    A packed SFT row also brings ``cu_seqlens`` and ``max_seqlen`` (its example boundaries). SFT
    rows bring ``real_tokens`` ([mbs] int64, each row's non-padding positions), counted by the step."""
    batch: Dict[str, Optional[torch.Tensor]] = {
        k: torch.stack([torch.as_tensor(s[k]) for s in samples]).to(dtype) for k, dtype in _KEYS.items()
    }
    if samples[0].get("real_tokens") is not None:  # SFT rows: their non-padding positions (pretraining: all)
        batch["real_tokens"] = torch.tensor([int(s["real_tokens"]) for s in samples], dtype=torch.int64)
    masks = [s.get("attention_mask") for s in samples]
    batch["attention_mask"] = None if masks[0] is None else torch.stack(masks).to(torch.bool)
    if len(samples) == 1 and samples[0].get("cu_seqlens") is not None:
        # a packed SFT row (packing implies micro_batch_size 1): its example boundaries for the THD
        # path, and the longest example computed here on the CPU (no GPU sync in the step)
        from plugtron.data.sft import longest_segment

        batch["cu_seqlens"] = samples[0]["cu_seqlens"]
        batch["max_seqlen"] = longest_segment(samples[0]["cu_seqlens"])
    return batch


def _check_sizes(dataset, micro_batch_size: int, global_batch_size: int, dp_rank: int, dp_size: int) -> None:
    if dataset is None or len(dataset) == 0:
        raise DataError("cannot draw batches from an empty (or missing) dataset split")
    problems = []
    if micro_batch_size < 1 or dp_size < 1:
        problems.append(f"train.micro_batch_size: {micro_batch_size} and data-parallel size {dp_size} must be >= 1")
    elif global_batch_size % (micro_batch_size * dp_size) != 0:
        problems.append(
            f"train.global_batch_size: {global_batch_size} is not a multiple of micro_batch_size "
            f"{micro_batch_size} x data-parallel size {dp_size}")
    if not 0 <= dp_rank < max(dp_size, 1):
        problems.append(f"data-parallel rank {dp_rank} is outside [0, {dp_size})")
    if problems:
        raise ConfigError(problems, source="batches")


class MicroBatchIterator:
    """Endless iterator over this rank's micro batches, global batch after global batch.

    ``consumed_samples`` counts, across all ranks, the samples of complete global batches: it grows by
    ``global_batch_size`` when the last micro batch of a global batch is handed out, so after the
    optimizer step of that batch it is the value to checkpoint; pass it back to resume.
    """

    def __init__(self, dataset, micro_batch_size: int, global_batch_size: int, dp_rank: int = 0,
                 dp_size: int = 1, consumed_samples: int = 0, collate_fn=None) -> None:
        _check_sizes(dataset, micro_batch_size, global_batch_size, dp_rank, dp_size)
        if consumed_samples < 0:
            raise DataError(f"consumed_samples must be >= 0, got {consumed_samples}")
        self.dataset = dataset
        self.collate = collate_fn or collate  # the model kind's (T5 batches differ from GPT's)
        self.micro_batch_size = micro_batch_size
        self.global_batch_size = global_batch_size
        self.dp_rank, self.dp_size = dp_rank, dp_size
        self.num_microbatches = global_batch_size // (micro_batch_size * dp_size)
        self.consumed_samples = int(consumed_samples)
        self._next_micro = 0  # position inside the current global batch

    def sample_indices(self, consumed_samples: int, micro: int) -> List[int]:
        """Dataset indices of micro batch ``micro`` of this rank in the global batch that starts
        after ``consumed_samples`` samples."""
        share = self.global_batch_size // self.dp_size
        start = consumed_samples + self.dp_rank * share + micro * self.micro_batch_size
        n = len(self.dataset)
        return [(start + j) % n for j in range(self.micro_batch_size)]

    def __iter__(self) -> "MicroBatchIterator":
        return self

    def __next__(self) -> Dict[str, Optional[torch.Tensor]]:
        idx = self.sample_indices(self.consumed_samples, self._next_micro)
        batch = self.collate([self.dataset[i] for i in idx])
        self._next_micro += 1
        if self._next_micro == self.num_microbatches:
            self._next_micro = 0
            self.consumed_samples += self.global_batch_size
        return batch

    def global_batch(self) -> List[Dict[str, Optional[torch.Tensor]]]:
        """The rest of the current global batch (all of it when called on a batch boundary)."""
        return [next(self) for _ in range(self.num_microbatches - self._next_micro)]


class EvalBatches:
    """The first ``eval_iters`` global batches of a split, the same window at every evaluation, so
    losses of successive evaluations are comparable.

    Each ``iter()`` starts over and yields ``len(self)`` micro batches of this rank, i.e.
    ``eval_iters`` runs of ``num_microbatches``: one per forward-only step.
    """

    def __init__(self, dataset, micro_batch_size: int, global_batch_size: int, dp_rank: int = 0,
                 dp_size: int = 1, eval_iters: int = 1) -> None:
        _check_sizes(dataset, micro_batch_size, global_batch_size, dp_rank, dp_size)
        if eval_iters < 1:
            raise ConfigError([f"train.eval_iters: {eval_iters}; evaluation needs at least 1"], source="batches")
        self._args = (dataset, micro_batch_size, global_batch_size, dp_rank, dp_size)
        self.eval_iters = eval_iters
        self.num_microbatches = global_batch_size // (micro_batch_size * dp_size)

    def __len__(self) -> int:
        return self.eval_iters * self.num_microbatches

    def __iter__(self) -> Iterator[Dict[str, Optional[torch.Tensor]]]:
        it = MicroBatchIterator(*self._args, consumed_samples=0)
        for _ in range(len(self)):
            yield next(it)


def to_device(batch: Dict[str, Any]) -> Dict[str, Any]:
    """The batch's tensors on the current CUDA device (non-blocking copies); as is without CUDA."""
    if not torch.cuda.is_available():
        return batch
    return {k: (v.cuda(non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


class OnDevice:
    """Wraps a micro-batch iterator so each batch lands on the training device."""

    def __init__(self, it):
        self.it = it

    def __iter__(self):
        return self

    def __next__(self):
        return to_device(next(self.it))
