"""The memory_profiler plugin (former MemoryProfileCallback): its clear error without CUDA, and its
logic on a real tiny run with CUDA and the memory-history calls faked."""

import pickle
import sys

import pytest
import torch

from plugtron.config import load_config
from plugtron.errors import ConfigError, UnsupportedOnThisMachine
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from helpers import SMALL

BASE = SMALL + ["train.eval_interval=null", "logger.metrics_file=false", "train.train_iters=4",
                "profiling.record_memory_history=true", "profiling.profile_step_start=1", "profiling.profile_step_end=2"]


class FakeHistory:
    def __init__(self, monkeypatch):
        from plugtron.plugins import profiling_window

        self.calls = []
        monkeypatch.setattr(profiling_window, "cuda_available", lambda: True)  # the run itself stays on the CPU
        monkeypatch.setattr(torch.cuda.memory, "_record_memory_history", self._record)
        monkeypatch.setattr(torch.cuda.memory, "_snapshot", lambda: {"segments": [], "taken_after": list(self.calls)})

    def _record(self, enabled="all", max_entries=None, **kw):
        self.calls.append("stop" if enabled is None else f"record(max_entries={max_entries})")


class Phases:
    """What had been asked of the memory history when the model was about to be built, and after each step."""

    def __init__(self, history):
        self.history, self.at_build, self.after_step = history, None, {}

    def configure_model(self, config, provider):  # registered before the built-ins: runs after theirs
        self.at_build = list(self.history.calls)

    def on_step(self, state, metrics):
        self.after_step[metrics.iteration] = list(self.history.calls)


def run(monkeypatch, tmp_path, *overrides, plugins=()):
    history = FakeHistory(monkeypatch)
    phases = Phases(history)
    pm = PluginManager()
    pm.register("phases", phases)
    for i, p in enumerate(plugins):
        pm.register(f"extra{i}", p)
    cfg = load_config(None, BASE + [f"profiling.memory_snapshot_path={tmp_path}/mem/snap.pickle", *overrides])
    return history, phases, pm, cfg


def test_recorded_from_before_the_build_and_one_snapshot_at_the_end_step(monkeypatch, tmp_path):
    history, phases, pm, cfg = run(monkeypatch, tmp_path)
    train(cfg, plugin_manager=pm)
    assert phases.at_build == ["record(max_entries=100000)"]
    assert phases.after_step[1] == ["record(max_entries=100000)"]
    assert phases.after_step[2] == phases.after_step[4] == ["record(max_entries=100000)", "stop"]
    (snap,) = (tmp_path / "mem").iterdir()
    assert snap.name == "snap-rank0.pickle"
    assert pickle.loads(snap.read_bytes())["taken_after"] == ["record(max_entries=100000)"]  # taken, then stopped
    assert pm.loaded["memory_profiler"].written == [str(snap)]


def test_a_run_shorter_than_the_window_writes_it_at_the_end(monkeypatch, tmp_path):
    history, phases, pm, cfg = run(monkeypatch, tmp_path, "profiling.profile_step_end=9")
    train(cfg, plugin_manager=pm)
    assert history.calls == ["record(max_entries=100000)", "stop"] and phases.after_step[4] == history.calls[:1]
    assert [p.name for p in (tmp_path / "mem").iterdir()] == ["snap-rank0.pickle"]


def test_a_failing_run_still_writes_its_snapshot(monkeypatch, tmp_path):
    class OOM:
        def on_step_start(self, state):
            raise torch.OutOfMemoryError("CUDA out of memory (pretend)")

    history, phases, pm, cfg = run(monkeypatch, tmp_path, plugins=[OOM()])
    with pytest.raises(Exception, match="out of memory"):
        train(cfg, plugin_manager=pm)
    assert [p.name for p in (tmp_path / "mem").iterdir()] == ["snap-rank0.pickle"]


def test_a_rank_not_listed_records_nothing(monkeypatch, tmp_path):
    history, phases, pm, cfg = run(monkeypatch, tmp_path, "profiling.profile_ranks=[1]")
    cfg.validate(world_size=2)
    from plugtron.plugins.memory_profiler import MemoryProfiler

    plugin = MemoryProfiler(cfg)
    plugin.configure_model(cfg, cfg.model)  # this process is rank 0
    plugin.on_train_end(None)
    assert history.calls == [] and not (tmp_path / "mem").exists()


def test_an_existing_snapshot_is_never_overwritten(monkeypatch, tmp_path):
    history, phases, pm, cfg = run(monkeypatch, tmp_path)
    (tmp_path / "mem").mkdir()
    (tmp_path / "mem" / "snap-rank0.pickle").write_bytes(b"an earlier run's")
    with pytest.raises(ConfigError, match=r"profiling.memory_snapshot_path: .*snap-rank0.pickle already exist"):
        train(cfg, plugin_manager=pm)
    assert (tmp_path / "mem" / "snap-rank0.pickle").read_bytes() == b"an earlier run's" and history.calls == []


def test_without_cuda_the_run_stops_at_load_naming_the_field(monkeypatch, capsys):
    from plugtron import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine

    with pytest.raises(UnsupportedOnThisMachine, match=r"^profiling.record_memory_history: CUDA memory history needs a CUDA GPU"):
        PluginManager().load(load_config(None, BASE).validate())
    assert cli.main(["train", *BASE]) == 2
    err = capsys.readouterr().err
    assert "profiling.record_memory_history: CUDA memory history needs a CUDA GPU" in err and "Traceback" not in err


def test_off_the_plugin_is_not_imported():
    sys.modules.pop("plugtron.plugins.memory_profiler", None)
    pm = PluginManager()
    pm.load(load_config(None, SMALL).validate())
    assert "memory_profiler" not in pm.loaded and "plugtron.plugins.memory_profiler" not in sys.modules
