"""The metrics_file plugin: one JSON line per log record and eval, exactly once per iteration across
a crash and resume, in the documented place."""

import logging
import os

import pytest

from plugtron.config import load_config
from plugtron.errors import PluginError
from plugtron.plugin_manager import PluginManager
from plugtron.plugins.metrics_file import FILE_NAME, metrics_dir, read_records
from plugtron.training import train

from helpers import SMALL


class CrashAfterLog:
    """Raises once the log record of ``at`` is out (the metrics file has written it): a crash
    between two checkpoints, with lines in the file that no checkpoint covers."""

    def __init__(self, at):
        self.at = at

    def on_log(self, state, log):
        if log["iteration"] == self.at:
            raise RuntimeError(f"simulated crash at {self.at}")


def _train(tmp_path, iters, *extra, plugins=()):
    pm = PluginManager()
    for i, p in enumerate(plugins):
        pm.register(f"test_{i}", p)
    cfg = load_config(None, SMALL + [f"train.train_iters={iters}", "train.eval_interval=3", "train.eval_iters=1",
                                     f"checkpoint.save={tmp_path}", "checkpoint.save_interval=4", *extra])
    return train(cfg, plugin_manager=pm)


def test_one_record_per_iteration_across_crash_and_resume(tmp_path):
    with pytest.raises(PluginError, match="simulated crash at 6"):
        _train(tmp_path, 6, plugins=[CrashAfterLog(6)])
    path = tmp_path / FILE_NAME
    first = read_records(path)
    assert [r["iteration"] for r in first if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert sorted(os.listdir(tmp_path)).count("iter_0000004") == 1 and "iter_0000006" not in os.listdir(tmp_path)

    _train(tmp_path, 8, f"checkpoint.load={tmp_path}", "scheduler.override_opt_param_scheduler=true")
    recs = read_records(path)
    train_iters = [r["iteration"] for r in recs if r["kind"] == "train"]
    assert train_iters == list(range(1, 9))
    assert [r["iteration"] for r in recs if r["kind"] == "valid"] == [3, 6]
    # 1..4 are the first run's lines, kept as they were; 5 and 6 are the resumed run's (its
    # schedule decays over 8 iterations, not 6: another lr, so the crashed run's lines are gone)
    old = {r["iteration"]: r for r in first if r["kind"] == "train"}
    by_iter = {r["iteration"]: r for r in recs if r["kind"] == "train"}
    assert [by_iter[i] for i in range(1, 5)] == [old[i] for i in range(1, 5)]
    for i in (5, 6):
        assert by_iter[i]["lr"] != old[i]["lr"]
    for r in recs:
        assert {"kind", "iteration", "loss"} <= set(r)


def test_location_follows_save_and_nothing_saved_writes_nothing(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, SMALL + ["train.train_iters=2"])
    assert metrics_dir(cfg) is None
    pm = PluginManager()
    with caplog.at_level(logging.INFO, logger="plugtron"):
        train(cfg, plugin_manager=pm)
    assert "metrics_file" in pm.loaded and "metrics file: not written (this run saves nothing" in caplog.text
    assert os.listdir(tmp_path) == []  # a run that saves nothing leaves nothing behind
    cfg = load_config(None, SMALL + [f"checkpoint.save={tmp_path}"])
    assert metrics_dir(cfg) == str(tmp_path)
    cfg = load_config(None, SMALL + [f"checkpoint.save={tmp_path}", f"logger.metrics_dir={tmp_path / 'm'}"])
    assert metrics_dir(cfg) == str(tmp_path / "m")


def test_off_writes_nothing(tmp_path):
    pm = PluginManager()
    train(load_config(None, SMALL + ["train.train_iters=2", "logger.metrics_file=false",
                                     f"logger.metrics_dir={tmp_path}"]), plugin_manager=pm)
    assert "metrics_file" not in pm.loaded
    assert not (tmp_path / FILE_NAME).exists()


def test_nan_and_inf_are_written_as_strict_json_and_read_back(tmp_path):
    import json
    import math

    from plugtron.plugins.metrics_file import MetricsFile
    from plugtron.testing import fake_state

    plugin = MetricsFile(load_config(None, SMALL + [f"logger.metrics_dir={tmp_path}"]))
    plugin.on_train_start(fake_state(0))
    plugin.on_log(fake_state(1), {"iteration": 1, "loss": float("nan"), "grad_norm": float("inf"), "lr": 1e-3})
    plugin.on_eval_log(fake_state(1), "valid", {"iteration": 1, "loss": 2.0, "ppl": float("-inf")})
    plugin.on_train_end(fake_state(1))

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    lines = (tmp_path / FILE_NAME).read_text().splitlines()
    strict = [json.loads(line, parse_constant=refuse) for line in lines]  # NaN / Infinity would raise here
    assert strict[0]["loss"] is None and strict[0]["nonfinite"] == {"loss": "nan", "grad_norm": "inf"}
    train_rec, valid_rec = read_records(tmp_path / FILE_NAME)
    assert math.isnan(train_rec["loss"]) and train_rec["grad_norm"] == math.inf and train_rec["lr"] == 1e-3
    assert valid_rec["ppl"] == -math.inf and "nonfinite" not in valid_rec


class LrUsed:
    """The learning rate each optimizer step really uses (the param group's, read just before the
    step) next to what ``on_step`` and ``on_log`` report."""

    def __init__(self):
        self.used, self.stepped, self.logged = [], [], []

    def on_before_optimizer_step(self, state):
        self.used.append(state.optimizer.param_groups[0]["lr"])

    def on_step(self, state, metrics):
        self.stepped.append(metrics.lr)

    def on_log(self, state, log):
        self.logged.append(log["lr"])


def test_logged_lr_is_the_one_the_step_used_during_warmup(tmp_path):
    rec = LrUsed()
    _train(tmp_path, 5, "scheduler.lr_warmup_iters=3", "scheduler.lr_decay_style=constant", "optimizer.lr=1e-3",
           "train.eval_interval=null", plugins=[rec])
    assert rec.used == pytest.approx([0.0, 1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3])  # step 1 at lr 0, as HF's warmup
    assert rec.stepped == pytest.approx(rec.used) and rec.logged == pytest.approx(rec.used)
    assert [r["lr"] for r in read_records(tmp_path / FILE_NAME) if r["kind"] == "train"] == pytest.approx(rec.used)


def test_every_step_loss_is_recorded_whatever_log_interval(tmp_path):
    """Issue 29, point 10: one ``step`` line per iteration (the first included) with that step's loss,
    although log records come every ``log_interval`` (5) only."""
    summary = _train(tmp_path, 7, "logger.log_interval=5", "train.eval_interval=null")
    recs = read_records(os.path.join(tmp_path, FILE_NAME))
    steps = [(r["iteration"], r["loss"]) for r in recs if r["kind"] == "step"]
    assert [it for it, _ in steps] == list(range(1, 8))
    assert [loss for _, loss in steps] == pytest.approx(summary["losses"], rel=1e-6)
    assert [r["iteration"] for r in recs if r["kind"] == "train"] == [5, 7]
    assert all("step_losses" not in r for r in recs)
