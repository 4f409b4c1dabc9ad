"""The ddp_parity plugin (former DdpParityChecker): replicas are compared every N iterations."""

import pytest

from plugtron.config import load_config
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from helpers import SMALL, torchrun

BASE = SMALL + ["train.eval_interval=null", "train.train_iters=4"]


def test_enabled_by_its_toggle_and_checks_every_interval():
    pm = PluginManager()
    train(load_config(None, BASE + ["train.check_weight_hash_across_dp_replicas_interval=2"]), plugin_manager=pm)
    assert pm.loaded["ddp_parity"].checks == 2  # iterations 2 and 4


def test_a_bad_interval_is_named():
    from plugtron.errors import ConfigError

    # checked statically (the rule table), before anything is built: a config error
    with pytest.raises(ConfigError, match="check_weight_hash_across_dp_replicas_interval: expected >= 0, got int -3"):
        train(load_config(None, BASE + ["train.check_weight_hash_across_dp_replicas_interval=-3"]))


@pytest.mark.slow
def test_dp2_replicas_agree_then_a_drift_is_caught(tmp_path):
    on = BASE + ["train.check_weight_hash_across_dp_replicas_interval=1"]
    assert torchrun(tmp_path, "agree", on)["iteration"] == 4
    out = torchrun(tmp_path, "drift", on, env={"PLUGTRON_TEST_PERTURB_RANK": "1"}, expect_rc=1, read=False)
    assert "data-parallel replicas hold different weights after iteration 3" in out
