"""The tensorboard plugin: event files read back with TensorBoard's own reader hold the loop's
scalars, a metric contributed by another plugin, eval loss/ppl and the config; a missing extra is
one config error naming it."""

import sys

import pytest

from plugtron.config import load_config
from plugtron.errors import ConfigError
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from helpers import SMALL


class Contributes:
    def collect_metrics(self, state):
        return {"test_metric": 10.0 * state.iteration}


def _events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return acc


def test_scalars_contributed_metrics_eval_and_config_read_back(tmp_path):
    pm = PluginManager()
    pm.register("contributes", Contributes())
    train(load_config(None, SMALL + ["train.train_iters=4", "train.eval_interval=2", "train.eval_iters=1",
                                     f"logger.tensorboard_dir={tmp_path}", "logger.log_validation_ppl_to_tensorboard=true",
                                     "logger.metrics_file=false"]), plugin_manager=pm)
    assert "tensorboard" in pm.loaded
    acc = _events(tmp_path)
    scalars = acc.Tags()["scalars"]
    for tag in ("train/loss", "train/lr", "train/grad_norm", "train/tokens_per_sec", "train/test_metric"):
        assert tag in scalars, tag
        assert [e.step for e in acc.Scalars(tag)] == [1, 2, 3, 4]
    assert [e.value for e in acc.Scalars("train/test_metric")] == [10.0, 20.0, 30.0, 40.0]
    assert [e.step for e in acc.Scalars("valid/loss")] == [2, 4]
    assert [e.step for e in acc.Scalars("valid/ppl")] == [2, 4]
    assert "config/text_summary" in acc.Tags()["tensors"]


def test_log_interval_thins_train_scalars(tmp_path):
    train(load_config(None, SMALL + ["train.train_iters=4", "train.eval_interval=null", f"logger.tensorboard_dir={tmp_path}",
                                     "logger.tensorboard_log_interval=2", "logger.metrics_file=false"]),
          plugin_manager=PluginManager())
    acc = _events(tmp_path)
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4]
    assert "valid/ppl" not in acc.Tags()["scalars"]  # ppl only with log_validation_ppl_to_tensorboard


def test_missing_extra_is_one_config_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now raises ImportError
    with pytest.raises(ConfigError) as info:
        PluginManager().load(load_config(None, [f"logger.tensorboard_dir={tmp_path}"]))
    assert "logger.tensorboard_dir" in str(info.value) and "plugtron[tensorboard]" in str(info.value)
