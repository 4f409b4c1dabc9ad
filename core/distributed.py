"""Process-level distributed helpers shared by training, checkpointing and conversion.

Everything here also works without an initialized process group (one process, e.g. a test or a
conversion in a plain ``python`` call): ranks are then 0 of 1 and collectives cost nothing.
Functions marked *collective* must be entered by every rank at the same point.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import List, Optional, Tuple

import torch
import torch.distributed as dist


def rank() -> int:
    """Global rank (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_rank0() -> bool:
    """The one process that writes shared files and log lines."""
    return rank() == 0


def barrier() -> None:
    """Collective: wait for every rank (free with one process)."""
    if world_size() > 1:
        dist.barrier()


def any_rank(*flags: bool) -> Tuple[bool, ...]:
    """Collective: for each flag, True on every rank when it is True on at least one rank.

    One tiny all-reduce (MAX over int32) per call when more than one process runs; with a CUDA
    device the tensor goes through NCCL, and reading the result back is a CPU-GPU sync."""
    if world_size() == 1:
        return tuple(bool(f) for f in flags)
    t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32)
    if torch.cuda.is_available():
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(x) for x in t.tolist())


def ranks_not_seeing(path: str) -> List[str]:
    """Collective: ``"rank R (host H)"`` for every rank on which ``path`` does not exist (empty when
    all see it, and always with one process). Call after the rank that created ``path`` has made it
    and everyone has passed a barrier: a rank that misses it is on another node whose filesystem is
    not the creator's (a node-local ``/tmp`` or home directory in a multi-node run).

    One ``all_gather_object`` (a pickled tuple per rank) - meant for set-up and save time, not steps."""
    seen = os.path.exists(path)
    if world_size() == 1:
        return [] if seen else [f"rank 0 ({socket.gethostname()})"]
    everyone: List[Optional[tuple]] = [None] * world_size()
    dist.all_gather_object(everyone, (rank(), socket.gethostname(), seen))
    return [f"rank {r} ({host})" for r, host, ok in everyone if not ok]


def init_process_group(backend: str = "auto", timeout_minutes: Optional[float] = None) -> bool:
    """Start torch.distributed if it is not running yet; returns True when this call started it
    (so the caller tears down only what it started).

    The CPU shims are applied first when CUDA is absent (Megatron-Core assumes CUDA in places).
    Under torchrun (``WORLD_SIZE``/``MASTER_ADDR`` set) the group rendezvous via ``env://``; a
    single plain process gets an in-memory store, so no port is opened. ``backend="auto"`` is
    NCCL with CUDA, gloo without."""
    cuda = torch.cuda.is_available()
    if not cuda:
        from plugtron.platform import cpu_shims

        cpu_shims.apply()
    if dist.is_initialized():
        return False
    if backend == "auto":
        backend = "nccl" if cuda else "gloo"
    timeout = timedelta(minutes=timeout_minutes) if timeout_minutes is not None else None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if world == 1 and "MASTER_ADDR" not in os.environ:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
    else:
        dist.init_process_group(backend, timeout=timeout)
    return True


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
