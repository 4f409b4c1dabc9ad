"""The megatron_experimental plugin (former MegatronEnableExperimentalCallback)."""

import pytest
from megatron.core import config as mcore_config

from plugtron.config import load_config
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from helpers import SMALL

BASE = SMALL + ["train.eval_interval=null", "train.train_iters=2"]


class FlagSeen:
    def __init__(self):
        self.at_build = self.at_start = None

    def configure_model(self, config, provider):  # registered first, so called after the plugin's
        self.at_build = mcore_config.is_experimental_enabled()

    def on_train_start(self, state):
        self.at_start = mcore_config.is_experimental_enabled()


@pytest.mark.parametrize("on", [True, False])
def test_flag_is_set_before_the_build_and_restored_at_the_end(on):
    pm, seen = PluginManager(), FlagSeen()
    pm.register("seen", seen)
    train(load_config(None, BASE + [f"dist.enable_megatron_core_experimental={str(on).lower()}"]), plugin_manager=pm)
    assert (seen.at_build, seen.at_start) == (on, on)
    assert ("megatron_experimental" in pm.loaded) is on
    assert mcore_config.is_experimental_enabled() is False


def test_restored_when_the_run_fails():
    from plugtron.plugins.megatron_experimental import MegatronExperimental

    plugin = MegatronExperimental(None)
    plugin.configure_model(None, None)
    assert mcore_config.is_experimental_enabled()
    plugin.on_exception(None, RuntimeError("boom"))
    assert not mcore_config.is_experimental_enabled()
