"""The nan_guard plugin (on by default): a NaN step stops the run and is never saved."""

import math
import os

import pytest
import torch

from plugtron.config import load_config
from plugtron.errors import PluginError
from plugtron.plugin_manager import PluginManager
from plugtron.training import train
from plugtron.training.metrics import StepMetrics

from helpers import SMALL

BASE = SMALL + ["train.eval_interval=null"]


class PoisonAt:
    """Fills the first weight with NaN just before iteration ``step`` runs: its loss is NaN."""

    def __init__(self, step):
        self.step = step

    def on_step_start(self, state):
        if state.iteration + 1 == self.step:
            with torch.no_grad():
                next(state.model[0].parameters()).fill_(math.nan)


class FirstIteration:
    def __init__(self):
        self.at = None

    def on_train_start(self, state):
        self.at = state.iteration


def test_nan_at_a_step_stops_the_run_and_a_resume_starts_before_it(tmp_path):
    ckpt = [f"checkpoint.save={tmp_path}", "checkpoint.save_interval=2", "train.train_iters=4"]
    pm = PluginManager()
    pm.register("poison", PoisonAt(3))
    with pytest.raises(PluginError, match=r"plugin 'nan_guard'.*loss nan and gradient norm nan at iteration 3; the step is not saved"):
        train(load_config(None, BASE + ckpt), plugin_manager=pm)
    assert sorted(p for p in os.listdir(tmp_path) if p.startswith("iter_")) == ["iter_0000002"]
    assert (tmp_path / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    pm, first = PluginManager(), FirstIteration()
    pm.register("first", first)
    out = train(load_config(None, BASE + ckpt + [f"checkpoint.load={tmp_path}"]), plugin_manager=pm)
    assert first.at == 2 and out["iteration"] == 4
    assert all(math.isfinite(x) for x in out["losses"])


def test_switched_off_a_nan_run_goes_on_and_the_plugin_is_not_loaded():
    pm = PluginManager()
    pm.register("poison", PoisonAt(2))
    out = train(load_config(None, BASE + ["train.train_iters=3", "train.check_for_nan_in_loss_and_grad=false"]),
                plugin_manager=pm)
    assert "nan_guard" not in pm.loaded
    assert math.isfinite(out["losses"][0]) and math.isnan(out["losses"][1])


def _guard(*overrides):
    from plugtron.plugins.nan_guard import NanGuard

    return NanGuard(load_config(None, list(overrides)))


def _step(i, loss, grad=1.0):
    return StepMetrics(iteration=i, loss=torch.tensor(loss), grad_norm=grad, lr=0.1, skipped=False)


def test_an_inf_grad_norm_alone_stops():
    with pytest.raises(RuntimeError, match="loss 2.0 and gradient norm inf at iteration 7"):
        _guard().on_step(None, _step(7, 2.0, math.inf))


def test_spiky_loss_warns_or_stops_as_configured(caplog):
    guard = _guard("train.check_for_spiky_loss=true", "train.spiky_loss_factor=3")
    for i in range(1, 11):
        guard.on_step(None, _step(i, 2.0))
    guard.on_step(None, _step(11, 5.9))  # below 3 x 2.0
    assert guard.spikes == 0
    guard.on_step(None, _step(12, 7.5))  # above 3 x the mean (5.9 joined it)
    assert guard.spikes == 1 and "iteration 12: loss 7.5000 is above train.spiky_loss_factor=3" in caplog.text
    stopper = _guard("train.check_for_spiky_loss=true", "train.spiky_loss_action=stop")
    for i in range(1, 11):
        stopper.on_step(None, _step(i, 1.0))
    with pytest.raises(RuntimeError, match="iteration 11: loss 10.5000 is above train.spiky_loss_factor=10.*spiky_loss_action=warn"):
        stopper.on_step(None, _step(11, 10.5))
    assert _guard().spikes_on is False  # spikes are only checked when asked


def test_a_bad_spike_factor_is_named():
    from plugtron.plugins.nan_guard import NanGuard

    cfg = load_config(None, ["train.check_for_spiky_loss=true", "train.spiky_loss_factor=0.5"])
    assert NanGuard.config_problems(cfg) == [
        "train.spiky_loss_factor: expected a number > 1 (a loss this many times the running mean is a spike), got 0.5"]
