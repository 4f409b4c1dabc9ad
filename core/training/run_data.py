"""The data a run trains and evaluates on, built once the checkpoint (if any) is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional


@dataclass
class RunData:
    """One device-placing train iterator per model chunk (virtual pipeline stages each pull their
    own copy of the same stream), the three splits (``None`` when the config has no such split) and
    ``iterators(dataset, consumed_samples)``, which opens one micro-batch iterator per chunk."""

    train_iterators: List[Any]
    train: Any
    valid: Optional[Any]
    test: Optional[Any]
    iterators: Callable[[Any, int], List[Any]]

    def eval_iterators(self, dataset) -> List[Any]:
        """From sample 0 every time, so evaluations at different iterations are comparable."""
        from plugtron.data.batches import OnDevice

        return [OnDevice(i) for i in self.iterators(dataset, 0)]


def build_run_data(cfg, state) -> RunData:
    """Tokenizer, datasets and iterators for ``cfg``; training continues at
    ``state.consumed_train_samples``."""
    from megatron.core import parallel_state as ps

    from plugtron.data import MicroBatchIterator, build_tokenizer
    from plugtron.data.batches import OnDevice
    from plugtron.providers.model_kind import kind_for

    kind = kind_for(cfg.model)  # GPT or T5 samples and batches
    train_ds, valid_ds, test_ds = kind.build_datasets(cfg, build_tokenizer(cfg.tokenizer))
    dp_rank, dp_size = ps.get_data_parallel_rank(), ps.get_data_parallel_world_size()
    t = cfg.train

    def iterators(ds, consumed: int) -> List[Any]:
        return [
            MicroBatchIterator(ds, t.micro_batch_size, t.global_batch_size, dp_rank, dp_size,
                               consumed_samples=consumed, collate_fn=kind.collate)
            for _ in state.model
        ]

    train = [OnDevice(i) for i in iterators(train_ds, state.consumed_train_samples)]
    return RunData(train_iterators=train, train=train_ds, valid=valid_ds, test=test_ds, iterators=iterators)
