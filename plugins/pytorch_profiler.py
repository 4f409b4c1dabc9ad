"""PyTorch profiler (former NeMo ``PytorchProfilerCallback``; Megatron Bridge's ``use_pytorch_profiler``).

Toggle: ``profiling.use_pytorch_profiler``. On the ranks in ``profiling.profile_ranks`` it runs
``torch.profiler`` over iterations ``profile_step_start`` .. ``profile_step_end`` (both included,
numbered as in the log) with one warmup step before the window (the profiler's own start-up cost
stays out of the trace; none when the window starts at the run's first step). Activities: CPU, and
CUDA too when the machine has a GPU. Options: ``profiling.record_shapes`` (input shapes of each
op), ``pytorch_profiler_collect_callstack`` (Python stacks), ``pytorch_profiler_profile_memory``
(tensor allocations).

One trace per profiled rank, a Chrome trace JSON that Perfetto (ui.perfetto.dev), chrome://tracing
and TensorBoard's PyTorch profiler plugin open::

    <dir>/rank<R>-iter<first>-<last>-<UTC time>-<pid>.pt.trace.json

``<dir>`` is ``profiling.trace_dir``, else ``<checkpoint.save>/profiler``, else
``<system temp dir>/plugtron-runs/profiler``; the path is logged. The time and pid keep an earlier
run's trace from ever being overwritten. The step markers inside are ``ProfilerStep#<iteration>``.
A run that ends (or fails) inside the window writes the steps it profiled.

Cost: inside the window every op is recorded (a few microseconds each, more with shapes and
stacks); outside it, nothing. No collective.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import List, Optional

from plugtron.hookspecs import hookimpl
from plugtron.plugins.profiling_window import in_window, profiles_rank, window_problems
from plugtron.plugins.teardown import ReleaseAtEnd

log = logging.getLogger("plugtron")


def trace_dir(config) -> str:
    """Where the traces go (see the module doc); creates nothing."""
    if config.profiling.trace_dir:
        return config.profiling.trace_dir
    if config.checkpoint.save:
        return os.path.join(config.checkpoint.save, "profiler")
    return os.path.join(tempfile.gettempdir(), "plugtron-runs", "profiler")


class PytorchProfiler(ReleaseAtEnd):
    @staticmethod
    def config_problems(config) -> List[str]:
        """Checked by ``train``, ``config show`` and ``plugins list`` before anything is built."""
        return window_problems(config)

    def __init__(self, config):
        self.config = config
        self.dir = trace_dir(config)
        self.prof = None
        self.first: Optional[int] = None  # first and last profiled iteration
        self.last: Optional[int] = None
        self.rank = 0
        self.written: List[str] = []  # observable in tests

    def _schedule(self, step: int):
        """Iteration number -> action (``prof.step_num`` is kept equal to the iteration about to run)."""
        from torch.profiler import ProfilerAction

        p = self.config.profiling
        if step < p.profile_step_start:
            return ProfilerAction.WARMUP
        if step < p.profile_step_end:
            return ProfilerAction.RECORD
        return ProfilerAction.RECORD_AND_SAVE if step == p.profile_step_end else ProfilerAction.NONE

    def _trace_ready(self, prof) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"rank{self.rank}-iter{self.first}-{self.last}-{stamp}-{os.getpid()}.pt.trace.json"
        path = os.path.join(self.dir, name)
        prof.export_chrome_trace(path)  # cost: writes every recorded event (MBs per step)
        self.written.append(path)
        log.info(f"pytorch_profiler: rank {self.rank} wrote the trace of iterations {self.first}-{self.last} to {path}")

    def _start(self, iteration: int) -> None:
        import torch
        from torch.profiler import ProfilerActivity, profile

        p = self.config.profiling
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        os.makedirs(self.dir, exist_ok=True)
        self.prof = profile(activities=activities, schedule=self._schedule, on_trace_ready=self._trace_ready,
                            record_shapes=p.record_shapes, with_stack=p.pytorch_profiler_collect_callstack,
                            profile_memory=p.pytorch_profiler_profile_memory)
        # Step markers (ProfilerStep#N) and the schedule count iterations: the profiler counts from
        # 0 and decided its first action at construction, so both are moved to this iteration.
        self.prof.step_num = iteration
        self.prof.current_action = self._schedule(iteration)
        if hasattr(self.prof, "_prev_schedule_action"):  # newer torch keeps a copy (DEVICE_STOPPED handling)
            self.prof._prev_schedule_action = self.prof.current_action
        self.prof.start()

    @hookimpl
    def on_step_start(self, state):
        iteration = state.iteration + 1
        p = self.config.profiling
        if self.prof is not None:
            self.prof.step()  # iteration `iteration` begins: its marker opens, the schedule moves on
        # Start one step early (warmup); a run that resumes inside the window starts at once.
        elif self.first is None and p.profile_step_start - 1 <= iteration <= p.profile_step_end:
            self.rank = state.rank
            if profiles_rank(self.config, self.rank):
                self._start(iteration)

    @hookimpl
    def on_step(self, state, metrics):
        if self.prof is None:
            return
        if in_window(self.config, metrics.iteration):
            self.first = metrics.iteration if self.first is None else self.first
            self.last = metrics.iteration
        if metrics.iteration >= self.config.profiling.profile_step_end:
            self.prof.step()  # past the window's last iteration: the trace is written now
            self.release()

    def release(self) -> None:
        """Stop the profiler; inside the window (the run ended or failed early) the steps so far are written."""
        if self.prof is not None:
            prof, self.prof = self.prof, None
            if self.first is None:  # only the warmup step ran: nothing to write
                prof.on_trace_ready = None
            prof.stop()
