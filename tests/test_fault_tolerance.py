"""The fault_tolerance plugin: which timeouts a run may compute, the two clear refusals (no package,
no ft_launcher), and a run reporting to a real rank monitor - started here the way ft_launcher starts
one per rank - whose computed timeouts come from the observed step times and survive a resume."""

import sys
import time

import pytest
import torch

from plugtron.errors import PlugtronError, PluginError
from plugtron.hookspecs import hookimpl
from plugtron.plugins.fault_tolerance import SOCKET_ENV, sections_to_update
from plugtron.testing import resume, run_training

ALL = ["setup", "step", "checkpointing"]
FT = ["ft.enable_ft_package=true", "ft.calc_ft_timeouts=true", "ft.min_steps_for_timeouts=3"]


def test_which_section_timeouts_a_run_can_compute():
    fresh = dict(known=ALL, steps_seen=20, min_steps=16, resumed=False, saves_seen=1, async_save=False)
    assert sections_to_update(**fresh) == ["step", "checkpointing"]  # a fresh start's setup says nothing
    assert sections_to_update(**{**fresh, "resumed": True}) == ALL
    assert sections_to_update(**{**fresh, "steps_seen": 15}) == ["checkpointing"]
    assert sections_to_update(**{**fresh, "async_save": True}) == ["step"]
    assert sections_to_update(**{**fresh, "saves_seen": 0, "known": ["step"]}) == ["step"]


def test_without_the_package_the_config_error_names_the_extra(monkeypatch):
    from plugtron.config import load_config
    from plugtron.plugin_manager import PluginManager

    monkeypatch.setitem(sys.modules, "nvidia_resiliency_ext", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "nvidia_resiliency_ext.fault_tolerance", None)
    with pytest.raises(PlugtronError, match=r"ft.enable_ft_package: true, but nvidia-resiliency-ext is not installed; "
                                            r"install the extra: pip install 'plugtron\[ft\]'"):
        PluginManager().load(load_config(None, ["ft.enable_ft_package=true"]))


def test_without_ft_launcher_the_run_stops_before_building_and_names_it(monkeypatch):
    monkeypatch.delenv(SOCKET_ENV, raising=False)
    with pytest.raises(PluginError, match="launch with ft_launcher instead of torchrun") as err:
        run_training(FT)
    assert f"{SOCKET_ENV} is not set" in str(err.value)


class SlowFourthStep:
    """Step 4 takes 0.5 s longer, inside the plugin's "step" section (trylast: after it opened it)."""

    @hookimpl(trylast=True)
    def on_step_start(self, state):
        if state.iteration == 3:
            time.sleep(0.5)


@pytest.fixture
def rank_monitor(tmp_path, monkeypatch):
    """One rank monitor server, as ft_launcher starts for each rank, with the three sections."""
    import torch.multiprocessing as mp
    from nvidia_resiliency_ext.fault_tolerance import FaultToleranceConfig, RankMonitorServer

    cfg = FaultToleranceConfig(rank_section_timeouts={"setup": 600, "step": 180, "checkpointing": 420},
                               rank_out_of_section_timeout=300, safety_factor=5.0, enable_nic_monitor=False)
    socket_path = str(tmp_path / "rmon.socket")
    server = RankMonitorServer.run_in_subprocess(cfg, socket_path, mp_ctx=mp.get_context("spawn"))
    monkeypatch.setenv(SOCKET_ENV, socket_path)
    yield
    server.terminate()
    server.join(30)


def _saved_state(checkpoint_dir, iteration):
    path = f"{checkpoint_dir}/iter_{iteration:07d}/plugins/fault_tolerance/rank_00000.pt"
    return torch.load(path, weights_only=True)["current_timeouts"]


@pytest.mark.slow  # spawns the rank monitor process (as ft_launcher does) and trains twice
def test_timeouts_come_from_step_times_and_survive_a_resume(tmp_path, rank_monitor):
    first = run_training(FT + ["train.train_iters=6"], [SlowFourthStep()], checkpoint_dir=str(tmp_path / "ckpt"))
    saved = _saved_state(first.checkpoint_dir, 6)
    section = saved["section"]
    assert section["calculated_sections"] == ["checkpointing", "step"]  # no setup: nothing was resumed
    step = section["section"]["step"]
    assert 5 * 0.5 <= step < 5 * 3.0, step  # safety factor 5 x the slowest step (0.5 s sleep + the step)
    assert section["section"]["setup"] == 600  # the launcher's value, untouched
    assert saved["heartbeat"]["were_calculated"]

    # 2 more steps (< min_steps): the step timeout is not recomputed, so it can only be the restored one
    second = resume(first, FT)
    resaved = _saved_state(second.checkpoint_dir, 8)["section"]
    assert resaved["section"]["step"] == step
    assert "setup" in resaved["calculated_sections"] and resaved["section"]["setup"] < 600
