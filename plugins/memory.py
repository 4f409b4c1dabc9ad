"""Memory monitor (former NeMo ``MemoryMonitor``).

Toggle: ``logger.log_memory_to_tensorboard`` (Megatron Bridge's name; the metrics go into every log
record through ``collect_metrics``, so every logger - TensorBoard, the metrics file, the console
line - receives them). Per rank, in MiB: ``mem_rss_mib`` and ``mem_peak_rss_mib`` (this process's
resident set and its high-water mark, from psutil / ``getrusage``) always, and on CUDA
``cuda_allocated_mib``, ``cuda_reserved_mib`` and ``cuda_peak_allocated_mib`` (this rank's device).
Cost: a few system calls on log steps only; no collective, no device sync.
"""

from __future__ import annotations

import resource
import sys

from plugtron.hookspecs import hookimpl

MIB = 1024 * 1024


def peak_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class Memory:
    def __init__(self, config):
        import psutil

        self.process = psutil.Process()

    @hookimpl
    def collect_metrics(self, state):
        out = {"mem_rss_mib": self.process.memory_info().rss / MIB, "mem_peak_rss_mib": peak_rss_bytes() / MIB}
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["cuda_allocated_mib"] = torch.cuda.memory_allocated() / MIB
            out["cuda_reserved_mib"] = torch.cuda.memory_reserved() / MIB
            out["cuda_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / MIB
        return out
