"""Async checkpoint writes through Megatron's ``AsyncCallsQueue``.

``dist_checkpointing.save(..., async_sharded_save=True)`` returns a request whose write runs in a
forked process while training continues; its finalize functions (Megatron's metadata write, then
plugtron's publish) run on every rank once all ranks agree the write is done. The loop polls
without blocking after every step; the next save and the end of training block on it.
A kill before finalize leaves only a ``.staging`` directory: the previous checkpoint stays the
newest loadable one.
"""

from __future__ import annotations


def schedule(queue, request):
    """Start ``request`` in the background; returns the queue (created on first use)."""
    if queue is None:
        from megatron.core.dist_checkpointing.strategies.async_utils import AsyncCallsQueue

        # A temporal (forked per save) caller: a persistent worker would be spawned, which
        # re-imports the user's __main__ and costs seconds per process on CPU.
        queue = AsyncCallsQueue(persistent=False)
    queue.schedule_async_request(request)
    return queue
