"""Nsight Systems capture window (former NeMo ``NsysCallback``; Megatron Bridge's ``use_nsys_profiler``).

Toggle: ``profiling.use_nsys_profiler``. Launch the run under nsys with the capture range tied to
the CUDA profiler API, e.g.::

    nsys profile -s none -t nvtx,cuda --capture-range=cudaProfilerApi --capture-range-end=stop \\
        -o prof torchrun --nproc-per-node 8 -m plugtron train cfg.yaml profiling.use_nsys_profiler=true

On the ranks in ``profiling.profile_ranks`` it calls ``cudaProfilerStart`` before iteration
``profile_step_start`` and ``cudaProfilerStop`` after iteration ``profile_step_end`` (both
included, numbered as in the log), and inside that window emits an NVTX range for every autograd
op (``torch.autograd.profiler.emit_nvtx``; with their input shapes when ``profiling.record_shapes``).
``profiling.nvtx_ranges`` adds an ``iteration N`` range around each step and switches on
Megatron-Core's own NVTX ranges (pipeline schedule, layers) for the window. A run that ends or
fails inside the window stops the capture.

Needs CUDA: on a machine without it the run stops when the plugins load (right after the config is
validated, before anything is built) with an error naming ``profiling.use_nsys_profiler``.
Cost: NVTX ranges per op inside the window only; no collective.
"""

from __future__ import annotations

import logging
from typing import List

from plugtron.hookspecs import hookimpl
from plugtron.plugins.profiling_window import profiles_rank, require_cuda, window_problems
from plugtron.plugins.teardown import ReleaseAtEnd

log = logging.getLogger("plugtron")


class NsysProfiler(ReleaseAtEnd):
    @staticmethod
    def config_problems(config) -> List[str]:
        """Checked by ``train``, ``config show`` and ``plugins list`` before anything is built."""
        return window_problems(config)

    def __init__(self, config):
        require_cuda("profiling.use_nsys_profiler", "Nsight Systems capture (cudaProfilerStart/Stop)")
        self.config = config
        self.nvtx = None  # the emit_nvtx context while capturing
        self.range_open = False
        self.captured: List[int] = []  # iterations inside the capture; observable in tests

    @hookimpl
    def on_step_start(self, state):
        import torch

        p = self.config.profiling
        iteration = state.iteration + 1
        if self.nvtx is None and not self.captured and p.profile_step_start <= iteration <= p.profile_step_end \
                and profiles_rank(self.config, state.rank):
            torch.cuda.profiler.start()  # cudaProfilerStart: nsys begins capturing here
            self.nvtx = torch.autograd.profiler.emit_nvtx(record_shapes=p.record_shapes)
            self.nvtx.__enter__()
            if p.nvtx_ranges:
                from megatron.core.utils import configure_nvtx_profiling

                configure_nvtx_profiling(True)
            log.info(f"nsys_profiler: rank {state.rank} capturing from iteration {iteration}")
        if self.nvtx is not None:
            self.captured.append(iteration)
            if p.nvtx_ranges:
                torch.cuda.nvtx.range_push(f"iteration {iteration}")
                self.range_open = True

    @hookimpl
    def on_step(self, state, metrics):
        if self.nvtx is None:
            return
        self._close_range()
        if metrics.iteration >= self.config.profiling.profile_step_end:
            self.release()

    def _close_range(self) -> None:
        if self.range_open:
            import torch

            torch.cuda.nvtx.range_pop()
            self.range_open = False

    def release(self) -> None:
        """Stop the capture (end of the window, or the run ended or failed inside it)."""
        if self.nvtx is None:
            return
        import torch

        self._close_range()
        nvtx, self.nvtx = self.nvtx, None
        nvtx.__exit__(None, None, None)
        if self.config.profiling.nvtx_ranges:
            from megatron.core.utils import configure_nvtx_profiling

            configure_nvtx_profiling(False)
        torch.cuda.profiler.stop()  # cudaProfilerStop: nsys ends the capture range
        log.info(f"nsys_profiler: capture stopped after iteration {self.captured[-1]}")
