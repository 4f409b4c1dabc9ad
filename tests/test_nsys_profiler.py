"""The nsys_profiler plugin (former NsysCallback): its clear error on a machine without CUDA, and its
window logic with CUDA and the cudart / NVTX calls faked."""

import contextlib
import sys

import pytest
import torch

from plugtron.config import load_config
from plugtron.errors import UnsupportedOnThisMachine
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from helpers import SMALL

BASE = SMALL + ["train.eval_interval=null", "logger.metrics_file=false", "train.train_iters=5",
                "profiling.use_nsys_profiler=true", "profiling.profile_step_start=2", "profiling.profile_step_end=3"]


class FakeCuda:
    """Records what the plugin asks of CUDA: profiler start/stop, NVTX ranges and emit_nvtx."""

    def __init__(self, monkeypatch):
        self.calls = []
        from plugtron.plugins import profiling_window

        monkeypatch.setattr(profiling_window, "cuda_available", lambda: True)  # the rest of the run stays on the CPU
        monkeypatch.setattr(torch.cuda.profiler, "start", lambda: self.calls.append("cudaProfilerStart"))
        monkeypatch.setattr(torch.cuda.profiler, "stop", lambda: self.calls.append("cudaProfilerStop"))
        monkeypatch.setattr(torch.cuda.nvtx, "range_push", lambda msg: self.calls.append(f"push {msg}"))
        monkeypatch.setattr(torch.cuda.nvtx, "range_pop", lambda: self.calls.append("pop"))
        monkeypatch.setattr(torch.autograd.profiler, "emit_nvtx", self._emit_nvtx)

    @contextlib.contextmanager
    def _emit_nvtx(self, record_shapes=False):
        self.calls.append(f"emit_nvtx(record_shapes={record_shapes})")
        yield
        self.calls.append("emit_nvtx end")


class Steps:
    """Puts each iteration's number into the call record (registered before the built-ins, so its
    hooks run after theirs)."""

    def __init__(self, cuda):
        self.cuda = cuda

    def on_step_start(self, state):
        self.cuda.calls.append(f"step {state.iteration + 1}")


def run(monkeypatch, *overrides):
    cuda = FakeCuda(monkeypatch)
    pm = PluginManager()
    pm.register("steps", Steps(cuda))
    train(load_config(None, BASE + list(overrides)), plugin_manager=pm)
    return cuda.calls, pm


def test_capture_starts_before_the_first_and_stops_after_the_last_iteration_of_the_window(monkeypatch):
    calls, pm = run(monkeypatch)
    assert calls == ["step 1", "cudaProfilerStart", "emit_nvtx(record_shapes=False)", "step 2", "step 3",
                     "emit_nvtx end", "cudaProfilerStop", "step 4", "step 5"]
    assert pm.loaded["nsys_profiler"].captured == [2, 3]


def test_shapes_and_nvtx_ranges_when_asked(monkeypatch):
    from megatron.core import utils as mcore_utils

    seen = []

    class MegatronNvtx:
        def on_step(self, state, metrics):  # registered first: called after the plugin's on_step
            seen.append(mcore_utils._nvtx_enabled)

    monkeypatch.setattr(mcore_utils, "_nvtx_enabled", False)
    cuda = FakeCuda(monkeypatch)
    pm = PluginManager()
    pm.register("megatron_nvtx", MegatronNvtx())
    train(load_config(None, BASE + ["profiling.record_shapes=true", "profiling.nvtx_ranges=true"]), plugin_manager=pm)
    calls = cuda.calls
    assert calls[:3] == ["cudaProfilerStart", "emit_nvtx(record_shapes=True)", "push iteration 2"]
    assert calls[-3:] == ["pop", "emit_nvtx end", "cudaProfilerStop"] and "push iteration 3" in calls
    megatron = [c for c in calls if c.startswith("push megatron.core.")]  # Megatron's own ranges (layers, schedule)
    assert megatron and len([c for c in calls if c.startswith("push")]) == calls.count("pop")
    assert seen == [False, True, False, False, False]  # Megatron's own ranges only inside the window
    assert mcore_utils._nvtx_enabled is False


def test_only_the_listed_ranks_capture(monkeypatch):
    from plugtron.plugins.nsys_profiler import NsysProfiler
    from plugtron.testing import fake_metrics, fake_state

    cuda = FakeCuda(monkeypatch)
    cfg = load_config(None, BASE + ["profiling.profile_ranks=[1]"]).validate(world_size=2)
    for rank, expected in ((0, []), (1, ["cudaProfilerStart", "emit_nvtx(record_shapes=False)"])):
        cuda.calls.clear()
        plugin = NsysProfiler(cfg)
        plugin.on_step_start(fake_state(1, rank=rank, world_size=2))
        assert cuda.calls == expected
        plugin.on_step(fake_state(2, rank=rank, world_size=2), fake_metrics(2))


def test_a_run_failing_inside_the_window_stops_the_capture(monkeypatch):
    class Boom:
        def on_step(self, state, metrics):
            if metrics.iteration == 2:
                raise RuntimeError("boom")

    cuda = FakeCuda(monkeypatch)
    pm = PluginManager()
    pm.register("boom", Boom())
    with pytest.raises(Exception, match="boom"):
        train(load_config(None, BASE), plugin_manager=pm)
    assert cuda.calls[-2:] == ["emit_nvtx end", "cudaProfilerStop"]


def test_without_cuda_the_run_stops_at_load_naming_the_field(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UnsupportedOnThisMachine, match=r"^profiling.use_nsys_profiler: Nsight Systems capture .* needs a "
                                                        r"CUDA GPU; this machine has none"):
        PluginManager().load(load_config(None, BASE).validate())


def test_cli_without_cuda_exits_2_with_one_message(monkeypatch, capsys):
    from plugtron import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["train", *BASE]) == 2
    err = capsys.readouterr().err
    assert "profiling.use_nsys_profiler: Nsight Systems capture" in err and "Traceback" not in err, err


def test_off_the_plugin_is_not_imported():
    sys.modules.pop("plugtron.plugins.nsys_profiler", None)
    pm = PluginManager()
    pm.load(load_config(None, SMALL).validate())
    assert "nsys_profiler" not in pm.loaded and "plugtron.plugins.nsys_profiler" not in sys.modules
