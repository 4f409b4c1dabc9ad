"""The memory plugin: process RSS and peak RSS in every log record (CPU), reaching TensorBoard."""

from plugtron.config import load_config
from plugtron.plugin_manager import PluginManager
from plugtron.plugins.memory import Memory
from plugtron.training import train

from helpers import SMALL, LogRecords


def test_rss_and_peak_are_in_every_log_record_and_plausible():
    sees = LogRecords()
    seen = sees.records
    pm = PluginManager()
    pm.register("sees", sees)
    train(load_config(None, SMALL + ["train.train_iters=2", "train.eval_interval=null", "logger.metrics_file=false",
                                     "logger.log_memory_to_tensorboard=true"]), plugin_manager=pm)
    assert "memory" in pm.loaded and len(seen) == 2
    for rec in seen:
        # torch + Megatron are imported: well over 50 MiB resident; the peak is at least the current
        assert 50 < rec["mem_rss_mib"] <= rec["mem_peak_rss_mib"] + 1


def test_a_bigger_allocation_raises_the_peak():
    import numpy as np

    plugin = Memory(None)
    before = plugin.collect_metrics(None)
    block = np.ones(200 * 1024 * 1024 // 8)  # 200 MiB, touched (a fresh mapping: numpy mmaps large arrays)
    after = plugin.collect_metrics(None)
    # The current RSS grows by the block; the peak is at least the new RSS and never falls. (The old peak
    # may already have been higher than the new RSS, so "peak rose by 200 MiB" is not a sound claim.)
    assert after["mem_rss_mib"] >= before["mem_rss_mib"] + 180
    assert after["mem_peak_rss_mib"] >= max(before["mem_peak_rss_mib"], after["mem_rss_mib"]) - 1
    del block
