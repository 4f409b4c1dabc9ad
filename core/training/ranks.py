"""Where this process sits in the run, for plugins: hooks fire on every rank, and a plugin that
writes a file or a log line usually wants to do it once (``state.is_rank0``) or where the loss is
(``state.is_last_stage``). Read through ``TrainState``; ``plugtron.testing`` fakes them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankInfo:
    rank: int = 0  # global rank
    world_size: int = 1
    dp_rank: int = 0  # data-parallel rank and size (with context parallel: Megatron's DP group)
    dp_size: int = 1
    is_last_stage: bool = True  # last pipeline stage: the one that computes the loss

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0


def current() -> RankInfo:
    """This process's ranks (a single process when torch.distributed is not initialized)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return RankInfo()
    from megatron.core import parallel_state as ps

    if not ps.model_parallel_is_initialized():
        return RankInfo(rank=dist.get_rank(), world_size=dist.get_world_size())
    return RankInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    dp_rank=ps.get_data_parallel_rank(), dp_size=ps.get_data_parallel_world_size(),
                    is_last_stage=ps.is_pipeline_last_stage(ignore_virtual=True))
