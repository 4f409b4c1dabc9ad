"""The wandb plugin, offline (no network): the offline run file holds the config and every metric
(a contributed one included) per log step and eval; a resumed training continues the same run id;
a raising run is marked failed; a missing package is one config error naming the extra."""

import sys
from pathlib import Path

import pytest

from plugtron.config import load_config
from plugtron.errors import ConfigError, PluginError
from plugtron.plugin_manager import PluginManager
from plugtron.testing import resume, run_training

from _wandb_records import read_run


class Contributes:
    def collect_metrics(self, state):
        return {"test_metric": 10.0 * state.iteration}


class CrashAt:
    def __init__(self, at):
        self.at = at

    def on_step(self, state, metrics):
        if state.iteration == self.at:
            raise RuntimeError(f"simulated crash at {self.at}")


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    # No network, and nothing written to the user's ~/.config/wandb or ~/.cache/wandb.
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))


def _wandb(tmp_path, *extra):
    return ["logger.wandb_project=plugtron-test", "logger.wandb_exp_name=tiny", f"logger.wandb_save_dir={tmp_path / 'wb'}",
            "logger.wandb_mode=offline", "logger.metrics_file=false", *extra]


def test_offline_run_has_config_history_and_contributed_metric(tmp_path):
    res = run_training(_wandb(tmp_path), plugins={"contributes": Contributes()})
    [run] = read_run(tmp_path / "wb")
    assert f"wandb: project plugtron-test, local files in {tmp_path / 'wb' / 'wandb'}" in res.plugins["run_summary"].text
    assert run["name"] == "tiny" and run["project"] == "plugtron-test" and run["exit_code"] == 0
    assert run["config"]["train"]["train_iters"] == 4 and run["config"]["logger"]["wandb_exp_name"] == "tiny"
    by_step = {}
    for row in run["history"]:
        by_step.setdefault(row["_step"], {}).update(row)
    assert sorted(by_step) == [1, 2, 3, 4]
    for step, row in by_step.items():
        assert {"train/loss", "train/lr", "train/tokens_per_sec", "train/test_metric"} <= set(row)
        assert row["train/test_metric"] == 10.0 * step
    assert "valid/loss" in by_step[2] and "valid/ppl" in by_step[4] and "valid/loss" not in by_step[3]


def test_resume_keeps_the_run_id_and_a_crash_marks_it_failed(tmp_path):
    first = run_training(_wandb(tmp_path, "checkpoint.save_interval=2"), checkpoint_dir=str(tmp_path / "ckpt"))
    [run1] = read_run(tmp_path / "wb")
    # the resumed training crashes after its checkpoint at 6: the crash is recorded, the id kept
    with pytest.raises(PluginError, match="simulated crash at 7"):
        resume(first, _wandb(tmp_path, "checkpoint.save_interval=2"), plugins={"crash": CrashAt(7)}, train_iters=8)
    run1b, run2 = read_run(tmp_path / "wb")
    assert run2["id"] == run1["id"] and run2["exit_code"] == 1
    assert [r["_step"] for r in run2["history"] if "train/loss" in r] == [5, 6]
    # and the next resume (from the latest checkpoint, 6) continues the very same run
    resume(first, _wandb(tmp_path), train_iters=8)
    runs = read_run(tmp_path / "wb")
    finished = [r for r in runs if any(h.get("_step") == 8 for h in r["history"])]  # the one that got to 8
    assert {r["id"] for r in runs} == {run1["id"]} and len(finished) == 1 and finished[0]["exit_code"] == 0


def test_missing_package_is_one_config_error_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` / find_spec now fail
    with pytest.raises(ConfigError) as info:
        PluginManager().load(load_config(None, ["logger.wandb_project=p"]))
    assert "logger.wandb_project" in str(info.value) and "plugtron[wandb]" in str(info.value)


def test_rank_nonzero_opens_no_run_and_saves_no_state():
    from plugtron.plugins.wandb import Wandb
    from plugtron.testing import fake_state

    plugin = Wandb(load_config(None, _wandb(Path("/nonexistent"))))
    plugin.on_train_start(fake_state(0, rank=1, world_size=2))  # would fail loudly if it tried to init here
    assert plugin.run is None and plugin.on_save(fake_state(2, rank=1, world_size=2), "x") is None


@pytest.mark.slow
def test_kill_9_and_resume_keeps_the_run_id(tmp_path):
    """A real ``kill -9`` of the training process group (wandb's service included) after the
    checkpoint of iteration 2; the resume continues the run the killed process started."""
    import os
    import signal
    import subprocess
    import time

    ckpt = tmp_path / "ckpt"
    args = ["model.num_layers=2", "model.hidden_size=64", "model.seq_length=64", "dataset.sequence_length=64",
            "model.make_vocab_size_divisible_by=256", "train.micro_batch_size=2", "train.global_batch_size=2",
            "logger.log_interval=1", "train.eval_interval=null", "checkpoint.save_interval=2",
            f"checkpoint.save={ckpt}", *_wandb(tmp_path)]
    # not this test process's wandb service (WANDB_SERVICE, set once any earlier test used wandb in
    # process): the killed run would stay registered there and the resume below be "in use"
    env = {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "plugtron", "train", "train.train_iters=1000", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    deadline = time.time() + 300
    for line in proc.stdout:
        if "iter      3/1000" in line:
            break
        assert time.time() < deadline, "no iteration 3 within 300 s"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    [killed] = read_run(tmp_path / "wb")
    assert killed["exit_code"] is None  # it never finished: killed
    assert (ckpt / "iter_0000002").is_dir()
    run_training([f"checkpoint.load={ckpt}", "train.train_iters=4", "scheduler.override_opt_param_scheduler=true", *args])
    runs = read_run(tmp_path / "wb")
    assert len(runs) == 2 and runs[1]["id"] == killed["id"] and runs[1]["exit_code"] == 0
