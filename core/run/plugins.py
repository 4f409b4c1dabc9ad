"""NeMo-Run plugins with Megatron Bridge's names (``megatron.bridge.recipes.run_plugins``) for
``run.Script`` tasks that run ``python -m plugtron train``: each one appends plugtron overrides to the
task's arguments (``plugtron.run.overrides``) and, where the plugin is about the launch, sets the
executor (nsys on the launcher, Slurm's preemption signal, the fault-tolerance launcher). NeMo-Run
calls ``setup(task, executor)`` on a copy of the task when the experiment starts."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import List, Optional

import nemo_run as run

from plugtron.run import overrides

log = logging.getLogger("plugtron")


def _script(task, plugin) -> "run.Script":
    if not isinstance(task, run.Script):
        raise TypeError(f"{type(plugin).__name__}: plugtron's NeMo-Run plugins work on run.Script tasks "
                        f"(plugtron.run.plugtron_script builds one), got {type(task).__name__}")
    return task


def _extend(task, plugin, args: List[str]) -> None:
    _script(task, plugin).args.extend(args)
    if args:
        log.info(f"{type(plugin).__name__}: added {' '.join(args)}")


@dataclass(kw_only=True)
class NsysPlugin(run.Plugin):
    """Nsight Systems: the nsys profiler plugin's overrides, and nsys on the executor's launcher
    (``nsys profile -t nvtx,cuda ...``; on Slurm one report per node and rank)."""

    profile_step_start: int
    profile_step_end: int
    profile_ranks: Optional[List[int]] = None
    nsys_trace: Optional[List[str]] = None
    record_shapes: bool = False
    nsys_gpu_metrics: bool = False

    def setup(self, task, executor):
        _script(task, self)
        launcher = executor.get_launcher()
        launcher.nsys_profile = True
        launcher.nsys_trace = self.nsys_trace or ["nvtx", "cuda"]
        if isinstance(executor, run.SlurmExecutor):
            # %q{VAR}: expanded by nsys from each task's environment (not a Python format string)
            launcher.nsys_filename = "profile_%p_%q{SLURM_JOB_ID}_node%q{SLURM_NODEID}_rank%q{SLURM_PROCID}"
        if self.nsys_gpu_metrics:
            launcher.nsys_gpu_metrics = True
        _extend(task, self, overrides.nsys(self.profile_step_start, self.profile_step_end, self.profile_ranks,
                                           self.record_shapes))


@dataclass(kw_only=True)
class PyTorchProfilerPlugin(run.Plugin):
    """torch.profiler traces (and optionally the CUDA memory history) over the given steps."""

    profile_step_start: int
    profile_step_end: int
    profile_ranks: Optional[List[int]] = None
    record_memory_history: bool = False
    memory_snapshot_path: str = "snapshot.pickle"
    record_shapes: bool = False

    def setup(self, task, executor):
        _extend(task, self, overrides.pytorch_profiler(
            self.profile_step_start, self.profile_step_end, self.profile_ranks, self.record_memory_history,
            self.memory_snapshot_path, self.record_shapes))


@dataclass(kw_only=True)
class WandbPlugin(run.Plugin):
    """Weights & Biases logging, only when ``WANDB_API_KEY`` is set where the experiment is launched
    (the key is passed on in the executor's environment); otherwise a warning and nothing else."""

    project: str
    name: Optional[str] = None
    entity: Optional[str] = None
    save_dir: str = "/nemo_run/wandb"

    def setup(self, task, executor):
        _script(task, self)
        key = os.environ.get("WANDB_API_KEY")
        if not key:
            log.warning("WandbPlugin: WANDB_API_KEY is not set, so W&B logging stays off for this run")
            return
        executor.env_vars["WANDB_API_KEY"] = key
        _extend(task, self, overrides.wandb(self.project, self.entity, self.name, self.save_dir))


@dataclass(kw_only=True)
class PreemptionPlugin(run.Plugin):
    """Graceful preemption: the preemption plugin (save, then exit 0 on SIGTERM) and, on Slurm,
    ``--signal=TERM@<preempt_time>`` so the signal comes ``preempt_time`` seconds before the limit."""

    preempt_time: int = 60
    enable_exit_handler: bool = True

    def setup(self, task, executor):
        _extend(task, self, overrides.preemption(self.enable_exit_handler))
        if isinstance(executor, run.SlurmExecutor):
            executor.signal = f"TERM@{self.preempt_time}"


@dataclass(kw_only=True)
class FaultTolerancePlugin(run.Plugin):
    """Hang detection and restarts: the fault_tolerance plugin's overrides, NeMo-Run's
    ``FaultTolerance`` launcher (ft_launcher with in-job restarts) and job retries."""

    enable_ft_package: bool = True
    calc_ft_timeouts: bool = True
    num_in_job_restarts: int = 3
    num_job_retries_on_failure: int = 2
    initial_rank_heartbeat_timeout: int = 1800
    rank_heartbeat_timeout: int = 300
    # An ft_launcher config YAML on the cluster; NeMo-Run's launcher takes section timeouts only from
    # there, and without them the fault_tolerance plugin reports heartbeats alone (it says so).
    cfg_path: str = ""

    def setup(self, task, executor):
        _script(task, self)
        executor.launcher = run.FaultTolerance(
            max_restarts=self.num_in_job_restarts,
            initial_rank_heartbeat_timeout=self.initial_rank_heartbeat_timeout,
            rank_heartbeat_timeout=self.rank_heartbeat_timeout,
            cfg_path=self.cfg_path,
        )
        executor.retries = self.num_job_retries_on_failure
        _extend(task, self, overrides.fault_tolerance(self.enable_ft_package, self.calc_ft_timeouts))
