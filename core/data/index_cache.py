"""The sample-index cache in runs that span nodes, and who may write it.

Megatron's dataset builder writes the cache (document/sample/shuffle indices as ``.npy`` files) on
**global rank 0 only**, then every rank passes a barrier and the others load what rank 0 wrote. So
within one run the cache is never built twice, concurrently or not: that ordering, not a lock, is what
keeps two nodes from writing one shared directory at the same time. It assumes that every rank sees
rank 0's directory. Two ways that fails, and what plugtron does:

- **The directory is node-local** (the default ``~/.cache/plugtron`` on a cluster without a shared
  home, ``/tmp``, or ``PLUGTRON_CACHE_DIR`` pointing at a local disk): ranks on other nodes find no
  files after the barrier and crash on a missing ``.npy``. :func:`prepare` probes it first
  (rank 0 writes a marker, every rank looks for it: one small collective at set-up) and, when some
  rank cannot see it, builds the indices in memory on every rank instead (Megatron's uncached path:
  correct, with a warning naming the ranks and the setting that fixes it).
- **Two runs start at once on one shared cache** (two jobs, or two single-process runs): each run's
  rank 0 would write the same files while the other reads them half-written. :func:`writer_lock` holds
  an advisory ``flock`` on ``<cache>/.plugtron-build.lock`` around the build on the rank that may
  write, so the second run waits and then finds a complete cache. (``flock`` on NFS v4 and Lustre
  mounted with ``-o flock`` is cluster-wide; elsewhere it still orders runs on one node.)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import uuid
from typing import Iterator, Optional

log = logging.getLogger("plugtron")

PROBE_PREFIX = ".plugtron-shared-probe-"
LOCK_NAME = ".plugtron-build.lock"


def prepare(path: str, key: str) -> Optional[str]:
    """Collective (every rank calls it with the same ``path``). Creates the cache directory and
    checks it is writable on every rank; a rank where that fails stops all of them with one
    ``DataError`` naming it (instead of leaving the others in a collective). Returns ``path`` when
    every rank sees the directory rank 0 sees, otherwise ``None`` (no cache: every rank builds its
    indices in memory) after one warning on rank 0. ``key`` names the setting in messages.

    Cost: one broadcast and one ``all_gather_object`` of a small tuple, once per run."""
    import socket

    import torch.distributed as dist

    from plugtron import distributed
    from plugtron.errors import DataError

    problem = _local_problem(path, key)
    if distributed.world_size() == 1:
        if problem:
            raise DataError(problem)
        return path
    token = [uuid.uuid4().hex if distributed.is_rank0() else None]
    dist.broadcast_object_list(token, src=0)
    probe = os.path.join(path, PROBE_PREFIX + token[0])
    if distributed.is_rank0() and not problem:
        with open(probe, "w") as f:
            f.write("written by global rank 0 to find out which ranks share this directory\n")
    distributed.barrier()
    everyone = [None] * distributed.world_size()
    dist.all_gather_object(everyone, (distributed.rank(), socket.gethostname(), problem, os.path.exists(probe)))
    if distributed.is_rank0() and not problem:
        os.remove(probe)  # every rank has looked: the gather above returned
    problems = [f"rank {r} ({host}): {p}" for r, host, p, _ in everyone if p]
    if problems:
        raise DataError("; ".join(problems[:4]) + (f"; ... ({len(problems)} ranks)" if len(problems) > 4 else ""))
    blind = [f"rank {r} ({host})" for r, host, _, seen in everyone if not seen]
    if blind and distributed.is_rank0():
        log.warning(
            f"{key}: {path} is not shared by all nodes ({', '.join(blind[:4])}{' ...' if len(blind) > 4 else ''} "
            "cannot see rank 0's files there), so the sample indices are built in memory on every rank, "
            "uncached; point dataset.path_to_cache (or PLUGTRON_CACHE_DIR) at a shared filesystem to build them once")
    return None if blind else path


def _local_problem(path: str, key: str) -> Optional[str]:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        return f"{key}: cannot create {path} for the sample-index cache ({err.strerror})"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{key}: {path} is not writable; the sample-index cache must be"
    return None


@contextlib.contextmanager
def writer_lock(path: Optional[str]) -> Iterator[None]:
    """Hold the cache's build lock while the rank that may write it (global rank 0, or a process
    without torch.distributed) builds; other ranks of the run wait at Megatron's barrier instead.
    Blocks while another run holds it. No-op without a cache."""
    from plugtron import distributed

    if path is None or not distributed.is_rank0():
        yield
        return
    with open(os.path.join(path, LOCK_NAME), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # cost: waits for a concurrent run's build to finish
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
