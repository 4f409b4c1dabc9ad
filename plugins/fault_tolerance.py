"""Fault tolerance: hang detection by nvidia-resiliency-ext's rank monitor (former NeMo
``FaultToleranceCallback`` / NeMo-Run ``FaultTolerancePlugin``; Megatron Bridge's ``ft`` section).

Toggle: ``ft.enable_ft_package``. The run must be started by nvidia-resiliency-ext's ``ft_launcher``
(torchrun's superset: it starts one rank monitor per rank and restarts the workload when a monitor
kills a hung rank); without it there is no monitor to report to and the run stops before anything is
built, saying so. Each rank reports through a ``RankMonitorClient``:

- sections ``setup`` (from before the model is built to the first step), ``step`` (each step after
  ``ft.warmup_steps``) and ``checkpointing`` (each save, until its data is handed to the writer) -
  each one used only if the launcher's ``--ft-rank-section-timeouts`` defines it;
- a heartbeat after every step (for ``--ft-initial-rank-heartbeat-timeout`` /
  ``--ft-rank-heartbeat-timeout``).

With ``ft.calc_ft_timeouts`` the timeouts are computed from what this run observed (the longest time
across ranks x the launcher's safety factor, merged with earlier values): ``step`` and the heartbeat
timeouts once ``ft.min_steps_for_timeouts`` steps were seen, ``setup`` only in a run that resumed a
checkpoint (a fresh start's setup is not what a restart costs), ``checkpointing`` after a synchronous
save, out-of-section at the end of a run that saw all of those. They are updated at each save and at
the end, returned from ``on_save`` (kept in the checkpoint, the same on every rank) and sent to the
monitor again by ``on_load``, so a restarted job keeps its tight timeouts.

Costs: each section change and heartbeat is one synchronous round trip to the monitor over a Unix
socket (three per step); a timeout update is an all-reduce of a few floats (collective: at saves and
at the end, on every rank). In-process restart is not covered.

nvidia-resiliency-ext is an optional extra (``pip install 'plugtron[ft]'``); enabling the plugin
without it is a config error naming the extra.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import List

from plugtron.errors import PluginError
from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")

EXTRA_HINT = "pip install 'plugtron[ft]'"
SOCKET_ENV = "FT_RANK_MONITOR_IPC_SOCKET"  # set by ft_launcher for each rank it starts
SECTIONS = ("setup", "step", "checkpointing")
LAUNCH_HINT = ("ft_launcher --ft-rank-section-timeouts=setup:600,step:180,checkpointing:420 "
               "--ft-rank-out-of-section-timeout=300 --nproc_per_node=8 -m plugtron train ...")


def package_available() -> bool:
    """nvidia_resiliency_ext.fault_tolerance is installed (found without importing it: it imports torch)."""
    try:
        return importlib.util.find_spec("nvidia_resiliency_ext.fault_tolerance") is not None
    except (ImportError, ValueError):
        return False


def sections_to_update(*, known: List[str], steps_seen: int, min_steps: int, resumed: bool, saves_seen: int,
                       async_save: bool) -> List[str]:
    """Which section timeouts this run has seen enough of to compute (see the module docstring)."""
    wanted = []
    if resumed:
        wanted.append("setup")
    if steps_seen >= min_steps:
        wanted.append("step")
    if saves_seen and not async_save:  # async saves: the blocking part varies too much between saves
        wanted.append("checkpointing")
    return [s for s in wanted if s in known]


class FaultTolerance:
    @staticmethod
    def config_problems(config):
        if not package_available():
            return [f"ft.enable_ft_package: true, but nvidia-resiliency-ext is not installed; install the extra: {EXTRA_HINT}"]
        return []

    def __init__(self, config):
        ft = config.ft
        self.calc, self.warmup, self.min_steps = ft.calc_ft_timeouts, ft.warmup_steps, ft.min_steps_for_timeouts
        self.async_save = config.checkpoint.async_save
        self.client = None
        self.known: List[str] = []  # sections the launcher's config defines
        self.open: set = set()
        self.steps_seen = self.saves_seen = 0
        self.resumed = False

    # ---- monitor connection ------------------------------------------------------------------------
    @hookimpl
    def configure_model(self, config, provider):
        """The first hook, before anything is built: connect and open ``setup``."""
        if not os.environ.get(SOCKET_ENV):
            raise PluginError(
                f"plugin 'fault_tolerance': ft.enable_ft_package needs the rank monitor that nvidia-resiliency-ext's "
                f"ft_launcher starts for each rank, and this process was not started by it ({SOCKET_ENV} is not set); "
                f"launch with ft_launcher instead of torchrun, e.g. {LAUNCH_HINT}")
        from nvidia_resiliency_ext.fault_tolerance import RankMonitorClient

        self.client = RankMonitorClient()
        self.client.init_workload_monitoring()
        self.known = [s for s in SECTIONS if s in self.client.cfg.rank_section_timeouts]
        if len(self.known) < len(SECTIONS) and _is_rank0():
            missing = ", ".join(s for s in SECTIONS if s not in self.known)
            log.warning(f"fault tolerance: ft_launcher defines no timeout for section(s) {missing}; those are not "
                        "reported (heartbeats still are); add them with --ft-rank-section-timeouts")
        if _is_rank0():
            log.info(f"fault tolerance: rank monitor connected; timeouts {self.client.section_timeouts}, "
                     f"heartbeat {self.client.hb_timeouts}")
        self._start("setup")

    def _start(self, section: str) -> None:
        if section in self.known and section not in self.open:
            self.client.start_section(section)
            self.open.add(section)

    def _end(self, section: str) -> None:
        if section in self.open:
            self.client.end_section(section)
            self.open.discard(section)

    # ---- the loop ----------------------------------------------------------------------------------
    @hookimpl
    def on_load(self, state, checkpoint_dir, plugin_state):
        self.resumed = True
        if plugin_state and self.client is not None:
            self.client.load_state_dict(plugin_state)  # sends the saved timeouts to the monitor

    @hookimpl
    def on_step_start(self, state):
        self._end("setup")
        if self.steps_seen >= self.warmup:
            self._start("step")

    @hookimpl
    def on_step(self, state, metrics):
        self._end("step")
        self.steps_seen += 1
        self.client.send_heartbeat()

    @hookimpl
    def on_before_save(self, state):
        self._start("checkpointing")

    @hookimpl
    def on_save(self, state, checkpoint_dir):
        self._end("checkpointing")
        self.saves_seen += 1
        if self.calc:
            self._update_timeouts(closing=False)
        return self.client.state_dict()

    @hookimpl
    def on_train_end(self, state):
        if self.calc:
            self._update_timeouts(closing=True)
        self._shutdown()

    @hookimpl
    def on_exception(self, state, exc):
        self._shutdown()  # no collective here: other ranks may not be failing

    def _update_timeouts(self, closing: bool) -> None:
        """Collective (all-reduce inside the client): every rank decides alike from its counters."""
        sections = sections_to_update(known=self.known, steps_seen=self.steps_seen, min_steps=self.min_steps,
                                      resumed=self.resumed, saves_seen=self.saves_seen, async_save=self.async_save)
        out_of_section = closing and {"setup", "step"} <= set(sections) and self.saves_seen > 0
        if sections or out_of_section:
            self.client.calculate_and_set_section_timeouts(selected_sections=sections, calc_out_of_section=out_of_section,
                                                           skip_if_not_ready=True)
        if self.steps_seen >= self.min_steps:
            self.client.calculate_and_set_hb_timeouts(skip_if_not_ready=True)
        if _is_rank0():
            log.info(f"fault tolerance: timeouts now {self.client.section_timeouts}, heartbeat {self.client.hb_timeouts}")

    def _shutdown(self) -> None:
        if self.client is not None and self.client.is_initialized:
            for section in list(self.open):
                self._end(section)
            self.client.shutdown_workload_monitoring()
        self.client = None


def _is_rank0() -> bool:
    from plugtron import distributed

    return distributed.is_rank0()
