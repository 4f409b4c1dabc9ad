"""The straggler plugin: the outlier rule, a single-process run, and a rank made slow on purpose."""

import json

import pytest

from helpers import SMALL, torchrun

from plugtron.plugins.straggler import flag_stragglers
from plugtron.testing import run_training


def test_flags_ranks_whose_relative_performance_is_below_the_threshold():
    assert flag_stragglers([0.10, 0.11, 0.30, 0.0], 0.7) == {2: pytest.approx(1 / 3)}
    assert flag_stragglers([0.10, 0.12], 0.7) == {}
    assert flag_stragglers([0.0, 0.0], 0.7) == {}


def test_reports_every_interval_in_a_single_process_run():
    result = run_training(["straggler.log_straggler=true", "straggler.report_interval=2"])
    plugin = result.plugins["straggler"]
    assert [r["iterations"] for r in plugin.reports] == [(1, 2), (3, 4)]
    assert all(r["flagged"] == {} and r["cpu_s_per_step"][0] > 0 for r in plugin.reports)


def test_bad_threshold_is_a_config_error():
    from plugtron.config import load_config
    from plugtron.errors import ConfigError

    with pytest.raises(ConfigError, match="straggler.relative_perf_threshold"):
        load_config(None, ["straggler.log_straggler=true", "straggler.relative_perf_threshold=1.5"]).validate(1)


@pytest.mark.slow
def test_a_slow_rank_is_flagged_and_stops_the_run(tmp_path):
    """Rank 1 does 0.3 s of extra work per step (tests/helpers.SlowRank): the report at iteration 2
    flags rank 1 alone, and stop_if_detected stops the run there (one gather per report)."""
    out = torchrun(tmp_path, "slow", SMALL + ["train.train_iters=6", "train.eval_interval=null",
                                              "straggler.log_straggler=true", "straggler.report_interval=2",
                                              "straggler.stop_if_detected=true"],
                   env={"PLUGTRON_TEST_SLOW_RANK": "1:0.3"}, read=False)
    lines = [line for line in out.splitlines() if "straggler: iterations" in line]
    assert len(lines) == 1, out[-3000:]
    assert "STRAGGLERS below 0.7: rank 1 (relative performance" in lines[0] and "rank 0 (relative" not in lines[0]
    rank0 = json.loads((tmp_path / "slow.json.rank0").read_text())  # _dist_train's summary of rank 0
    assert rank0["iteration"] == 2 and rank0["stop_reason"].startswith("straggler detected at iteration 2")
