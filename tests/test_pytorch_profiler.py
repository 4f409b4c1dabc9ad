"""The pytorch_profiler plugin (former PytorchProfilerCallback) on a real tiny run, and the
profiling section's rules as config show reports them."""

import json
import sys

import pytest

from plugtron.config import load_config
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from helpers import SMALL

BASE = SMALL + ["train.eval_interval=null", "logger.metrics_file=false"]


def run(tmp_path, *overrides):
    pm = PluginManager()
    train(load_config(None, BASE + [f"profiling.trace_dir={tmp_path}", *overrides]), plugin_manager=pm)
    return pm


def steps_in(path):
    events = json.loads(open(path).read())["traceEvents"]
    steps = sorted({e["name"] for e in events if e.get("name", "").startswith("ProfilerStep#")})
    return steps, {e.get("name") for e in events}, events


def test_one_trace_of_exactly_the_window_with_the_models_ops(tmp_path):
    pm = run(tmp_path, "train.train_iters=5", "profiling.use_pytorch_profiler=true", "profiling.profile_step_start=2",
             "profiling.profile_step_end=3", "profiling.record_shapes=true")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("rank0-iter2-3-") and files[0].endswith(".pt.trace.json"), files
    steps, names, events = steps_in(tmp_path / files[0])
    assert steps == ["ProfilerStep#2", "ProfilerStep#3"]  # the warmup step 1 and the steps after 3 are not in it
    assert "aten::mm" in names or "aten::addmm" in names  # the model's matmuls
    assert any("Input Dims" in e.get("args", {}) for e in events)  # record_shapes
    assert pm.loaded["pytorch_profiler"].written == [str(tmp_path / files[0])]


def test_a_run_ending_inside_the_window_writes_the_steps_it_profiled(tmp_path):
    run(tmp_path, "train.train_iters=2", "profiling.use_pytorch_profiler=true", "profiling.profile_step_start=1",
        "profiling.profile_step_end=4")
    (trace,) = tmp_path.iterdir()
    assert trace.name.startswith("rank0-iter1-2-")
    assert steps_in(trace)[0] == ["ProfilerStep#1", "ProfilerStep#2"]


def test_a_rank_not_listed_writes_nothing(tmp_path):
    from plugtron.plugins.pytorch_profiler import PytorchProfiler
    from plugtron.testing import fake_metrics, fake_state

    cfg = load_config(None, ["profiling.use_pytorch_profiler=true", "profiling.profile_step_start=1",
                             "profiling.profile_step_end=1", f"profiling.trace_dir={tmp_path}"])
    plugin = PytorchProfiler(cfg)
    plugin.on_step_start(fake_state(0, rank=1, world_size=2))
    plugin.on_step(fake_state(1, rank=1, world_size=2), fake_metrics(1))
    assert plugin.prof is None and list(tmp_path.iterdir()) == []


def test_off_the_plugin_is_not_imported(tmp_path):
    sys.modules.pop("plugtron.plugins.pytorch_profiler", None)
    pm = run(tmp_path, "train.train_iters=2")
    assert "pytorch_profiler" not in pm.loaded and "plugtron.plugins.pytorch_profiler" not in sys.modules
    assert list(tmp_path.iterdir()) == []


def test_default_directory_is_under_the_save_directory(tmp_path):
    from plugtron.plugins.pytorch_profiler import trace_dir

    assert trace_dir(load_config(None, [f"checkpoint.save={tmp_path}"])) == str(tmp_path / "profiler")
    assert trace_dir(load_config(None, [f"profiling.trace_dir={tmp_path}/t"])) == f"{tmp_path}/t"


@pytest.mark.parametrize("overrides,expected", [
    (["profiling.use_pytorch_profiler=true", "profiling.use_nsys_profiler=true"],
     "profiling.use_nsys_profiler: the nsys and the PyTorch profiler cannot both be on"),
    (["profiling.use_pytorch_profiler=true", "profiling.profile_step_start=5", "profiling.profile_step_end=4"],
     "profiling.profile_step_end: expected >= profiling.profile_step_start (5; both iterations are profiled), got 4"),
    (["profiling.use_pytorch_profiler=true", "profiling.profile_step_start=0"],
     "profiling.profile_step_start: expected an iteration >= 1"),
    (["profiling.record_memory_history=true", "profiling.profile_ranks=[0,1]"],
     "profiling.profile_ranks: [1] not in this run's ranks 0..0 (world size 1)"),
    (["profiling.use_nsys_profiler=true", "profiling.profile_ranks=[]"],
     "profiling.profile_ranks: expected at least one global rank"),
])
def test_config_show_names_the_profiling_rule(overrides, expected, capsys):
    from plugtron import cli

    assert cli.main(["config", "show", *overrides]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
    assert err.count(expected) == 1, err  # two profilers on: a shared rule is reported once


def test_the_rules_apply_only_when_a_profiler_is_on(capsys):
    from plugtron import cli

    assert cli.main(["config", "show", "profiling.profile_step_start=5", "profiling.profile_step_end=4"]) == 0


def test_a_one_iteration_window_at_the_first_step(tmp_path):
    import torch

    from plugtron.plugins.pytorch_profiler import PytorchProfiler
    from plugtron.testing import fake_metrics, fake_state

    cfg = load_config(None, ["profiling.use_pytorch_profiler=true", "profiling.profile_step_start=1",
                             "profiling.profile_step_end=1", f"profiling.trace_dir={tmp_path}"])
    plugin = PytorchProfiler(cfg)
    for i in (1, 2):
        plugin.on_step_start(fake_state(i - 1))
        torch.randn(8, 8) @ torch.randn(8, 8)
        plugin.on_step(fake_state(i), fake_metrics(i))
    (trace,) = tmp_path.iterdir()
    assert trace.name.startswith("rank0-iter1-1-") and steps_in(trace)[0] == ["ProfilerStep#1"]
    plugin.on_exception(None, RuntimeError("late"))  # nothing left to release: no second trace
    assert len(list(tmp_path.iterdir())) == 1
