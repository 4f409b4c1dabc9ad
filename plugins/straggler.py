"""Straggler detection (former NeMo ``StragglerDetectionCallback``, nvidia-resiliency-ext's PTL
callback; Megatron Bridge ``straggler`` / ``nvrx_straggler``; Megatron-LM's ``--log-straggler``).

Toggle: ``straggler.log_straggler``.

What is measured. In synchronous training every rank waits for the slowest one inside the
collectives of each step (gradient all-reduce, tensor-parallel all-reduces), so all ranks' *wall*
step times come out equal and cannot show which rank is slow. What differs is the work a rank does
itself: this plugin times each step in **main-thread CPU time** (``time.thread_time``), which keeps
running while the rank computes (CPU training, data preparation, kernel launches, Python overhead)
and stops while the thread blocks waiting for other ranks. A rank that *sleeps* (an I/O stall) is
therefore not seen by this measure; GPU compute is seen by nvidia-resiliency-ext's detector (below).

Every ``straggler.report_interval`` iterations the ranks exchange their mean CPU time per step and
mean wall time per step since the last report (**one all_gather of two floats, on reporting iterations
only**); rank 0 logs the ``straggler_minmax_count`` slowest and fastest ranks and flags each rank
whose relative performance - the fastest rank's time divided by its own - is below
``straggler.relative_perf_threshold``. With ``straggler.stop_if_detected`` the run then stops (and
saves). On CUDA, when ``nvidia_resiliency_ext.straggler`` imports and ``straggler.use_nvrx`` is on,
each step is also a detection section of its ``Detector`` (CUPTI kernel times, NCCL kernels left out)
and its GPU relative/individual scores are reported at the same iterations (its report is a
collective too).
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any, Dict, List

from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")


def flag_stragglers(per_rank_times: List[float], threshold: float) -> Dict[int, float]:
    """rank -> relative performance (fastest time / its time) for every rank below ``threshold``.
    Ranks with no measured time (0) are left out."""
    measured = [t for t in per_rank_times if t > 0]
    if not measured:
        return {}
    fastest = min(measured)
    return {r: fastest / t for r, t in enumerate(per_rank_times) if t > 0 and fastest / t < threshold}


class Straggler:
    def __init__(self, config):
        s = config.straggler
        self.interval, self.minmax, self.threshold = s.report_interval, s.straggler_minmax_count, s.relative_perf_threshold
        self.stop_if_detected = s.stop_if_detected
        self.use_nvrx = s.use_nvrx
        self.reports: List[Dict[str, Any]] = []  # what rank 0 logged; read by tests and embedding code
        self._reset()
        self._cpu0 = self._wall0 = 0.0
        self._nvrx = None  # the Detector class while it is initialized
        self._section = None

    def _reset(self) -> None:
        self.cpu_sum = self.wall_sum = 0.0
        self.steps = 0

    @hookimpl
    def on_train_start(self, state):
        import torch

        if self.use_nvrx and torch.cuda.is_available():
            try:
                from nvidia_resiliency_ext.straggler import Detector
            except ImportError:  # optional: the CPU-time report still runs
                log.info("straggler: nvidia-resiliency-ext not importable; reporting CPU step times only")
            else:
                # report_time_interval is unused: plugtron asks for reports at fixed iterations (all ranks agree)
                Detector.initialize(scores_to_compute="all", gather_on_rank0=True, profiling_interval=1,
                                    report_time_interval=1e9, node_name=socket.gethostname())
                self._nvrx = Detector

    @hookimpl
    def on_step_start(self, state):
        if self._nvrx is not None:
            self._section = self._nvrx.detection_section("step", profile_cuda=True)
            self._section.__enter__()
        self._cpu0, self._wall0 = time.thread_time(), time.perf_counter()

    @hookimpl
    def on_step(self, state, metrics):
        self.cpu_sum += time.thread_time() - self._cpu0
        self.wall_sum += time.perf_counter() - self._wall0
        self.steps += 1
        if self._section is not None:
            self._section.__exit__(None, None, None)
            self._section = None
        if metrics.iteration % self.interval == 0:
            self._report(state, metrics.iteration)

    def _report(self, state, iteration: int) -> None:
        """Collective (every rank, on reporting iterations only): one all_gather of two floats,
        plus the NVRx detector's report when it runs."""
        import torch
        import torch.distributed as dist

        mine = torch.tensor([self.cpu_sum / max(self.steps, 1), self.wall_sum / max(self.steps, 1)], dtype=torch.float64)
        if dist.is_initialized() and dist.get_world_size() > 1:
            if torch.cuda.is_available() and dist.get_backend() == "nccl":
                mine = mine.cuda()
            gathered = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, mine)
            rows = [g.tolist() for g in gathered]
        else:
            rows = [mine.tolist()]
        gpu = self._nvrx.generate_report() if self._nvrx is not None else None
        first = iteration - self.steps + 1
        self._reset()
        if not state.is_rank0:
            return
        cpu = [r[0] for r in rows]
        flagged = flag_stragglers(cpu, self.threshold)
        order = sorted(range(len(cpu)), key=lambda r: cpu[r])
        ms = lambda r: f"rank {r} {1e3 * cpu[r]:.1f} ms"  # noqa: E731
        report = {"iterations": (first, iteration), "cpu_s_per_step": cpu, "wall_s_per_step": [r[1] for r in rows],
                  "flagged": flagged}
        line = (f"straggler: iterations {first}-{iteration}, compute per step (main-thread CPU time): slowest "
                f"{', '.join(ms(r) for r in order[::-1][:self.minmax])}; fastest {', '.join(ms(r) for r in order[:self.minmax])}; "
                f"wall {1e3 * min(report['wall_s_per_step']):.1f}-{1e3 * max(report['wall_s_per_step']):.1f} ms")
        if gpu is not None:
            found = gpu.identify_stragglers(gpu_rel_threshold=self.threshold, gpu_indiv_threshold=self.threshold)
            report["gpu_relative_perf_scores"] = dict(gpu.gpu_relative_perf_scores)
            report["gpu_stragglers"] = sorted(s.rank for s in found["straggler_gpus_relative"] | found["straggler_gpus_individual"])
            line += f"; GPU stragglers (nvidia-resiliency-ext): {report['gpu_stragglers'] or 'none'}"
        self.reports.append(report)
        if flagged:
            names = ", ".join(f"rank {r} (relative performance {p:.2f})" for r, p in sorted(flagged.items()))
            log.warning(f"{line}; STRAGGLERS below {self.threshold}: {names}")
        else:
            log.info(line)
        if (flagged or report.get("gpu_stragglers")) and self.stop_if_detected:
            state.request_stop(f"straggler detected at iteration {iteration} (straggler.stop_if_detected)", save=True)

    def _shutdown(self) -> None:
        if self._nvrx is not None:
            if self._section is not None:
                self._section.__exit__(None, None, None)
                self._section = None
            self._nvrx.shutdown()
            self._nvrx = None

    @hookimpl
    def on_train_end(self, state):
        self._shutdown()

    @hookimpl
    def on_exception(self, state, exc):
        self._shutdown()
