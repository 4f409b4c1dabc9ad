"""Throughput and MFU monitor (former NeMo ``SpeedMonitor`` + ``FLOPsMeasurementCallback``). On by default.

Toggle: ``logger.log_throughput``. Contributes to every log record (``collect_metrics``, so every
logger plugin receives them): ``samples_per_sec``, ``tflops_per_device`` (model FLOPs by Megatron's
formula, ``plugtron.training.flops``: causal attention counted in full, GQA, SwiGLU, MoE top-k;
divided by the world size) and ``mfu`` (a fraction of the device's peak). The loop's own
``tokens_per_sec`` is already in the record (real tokens: the positions that only pad SFT rows are not counted;
the record's ``padding_tokens`` has them). All are averaged over the last ``WINDOW`` iterations.

Peak: on CUDA the dense bf16 peak from ``plugtron.training.flops.PEAK_BF16`` by device name (no
``mfu`` for a device not in the table); on CPU the peak is *measured* once at the start with an
fp32 matmul (logged as such: CPU MFU is relative to that measurement, not a data sheet).
Cost: one ``perf_counter()`` per step; no collective, no sync (on CUDA the step times are
host-side, which the window average over several steps evens out).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from typing import Optional

from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")

WINDOW = 20  # iterations the rates are averaged over


def measure_cpu_peak_tflops(n: int = 1024, repeats: int = 8) -> float:
    """fp32 matmul rate of this process on CPU, TFLOP/s (best of ``repeats``): the CPU's usable peak."""
    import torch

    g = torch.Generator().manual_seed(0)  # its own generator: the run's RNG stream (and losses) stay untouched
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    a @ b  # warm-up (thread pool, caches)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e12


@functools.lru_cache(maxsize=None)
def _cpu_peak(threads: int) -> float:
    """The CPU peak, measured once per process and thread count (about a second on a busy machine:
    a second run in one process - tests, ``plugtron.testing`` - does not pay it again)."""
    return measure_cpu_peak_tflops()


class Throughput:
    def __init__(self, config, clock=time.perf_counter):
        from plugtron.training.flops import num_floating_point_operations

        self.flops_per_iter = num_floating_point_operations(config)
        self.samples_per_iter = config.train.global_batch_size
        self.clock = clock
        self.marks = deque(maxlen=WINDOW + 1)  # (time, iteration) after each step
        self.world_size = 1
        self.peak_tflops: Optional[float] = None

    @hookimpl
    def on_train_start(self, state):
        import torch

        from plugtron.training.flops import peak_bf16_tflops

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            self.world_size = torch.distributed.get_world_size()
        if torch.cuda.is_available():
            name = torch.cuda.get_device_name()
            self.peak_tflops = peak_bf16_tflops(name)
            if self.peak_tflops is None and state.is_rank0:
                log.info(f"throughput: no bf16 peak known for {name!r}; MFU not reported")
        else:
            self.peak_tflops = _cpu_peak(torch.get_num_threads())
            if state.is_rank0:
                log.info(f"throughput: CPU peak measured with a 1024x1024 fp32 matmul: {self.peak_tflops:.4f} TFLOP/s "
                         "(mfu is relative to this measurement)")
        self.marks.clear()
        self.marks.append((self.clock(), state.iteration))

    @hookimpl
    def on_step(self, state, metrics):
        self.marks.append((self.clock(), metrics.iteration))

    @hookimpl
    def collect_metrics(self, state):
        if len(self.marks) < 2:
            return None
        (t0, i0), (t1, i1) = self.marks[0], self.marks[-1]
        seconds, iters = t1 - t0, i1 - i0
        if seconds <= 0 or iters <= 0:
            return None
        tflops = self.flops_per_iter * iters / seconds / self.world_size / 1e12
        out = {"samples_per_sec": self.samples_per_iter * iters / seconds, "tflops_per_device": tflops}
        if self.peak_tflops:
            out["mfu"] = tflops / self.peak_tflops
        return out
