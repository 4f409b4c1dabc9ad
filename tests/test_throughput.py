"""The throughput plugin: TFLOP/s per device and MFU against a hand count of the model FLOPs, and
its metrics in a real run's log record."""

import pytest

from plugtron.config import load_config
from plugtron.plugin_manager import PluginManager
from plugtron.plugins.throughput import WINDOW, Throughput, measure_cpu_peak_tflops
from plugtron.training import train
from plugtron.training.metrics import StepMetrics

from helpers import SMALL, LogRecords

SHAPE = ["model.num_layers=2", "model.hidden_size=64", "model.num_attention_heads=4", "model.num_query_groups=4",
         "model.kv_channels=16", "model.ffn_hidden_size=256", "model.gated_linear_unit=false", "model.seq_length=64",
         "dataset.sequence_length=64", "model.vocab_size=512", "model.make_vocab_size_divisible_by=256",
         "train.micro_batch_size=2", "train.global_batch_size=8"]


class State:
    iteration = 0
    is_rank0 = True


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_tflops_and_mfu_match_a_hand_count():
    # per token and layer: QKV 2*64*16*(4+2*4) = 24576, scores+values 2*2*64*16*4 = 16384,
    # output 2*16*4*64 = 8192, MLP 2*64*256*2 = 65536 -> 114688; 2 layers + logits 2*64*512 = 294912;
    # x3 (forward + backward) x 64 tokens x 8 samples = 452,984,832 FLOPs per iteration
    flops = 452_984_832
    clock = Clock()
    plugin = Throughput(load_config(None, SHAPE), clock=clock)
    plugin.on_train_start(State())
    plugin.peak_tflops = 1e-3  # a known peak, so MFU is checkable
    for i in range(1, 31):  # 0.5 s per step; the window holds the last WINDOW steps
        clock.now += 0.5
        plugin.on_step(State(), StepMetrics(iteration=i, loss=None, grad_norm=None, lr=0.1, skipped=False))
    out = plugin.collect_metrics(State())
    assert out["tflops_per_device"] == pytest.approx(flops / 0.5 / 1e12)
    assert out["samples_per_sec"] == pytest.approx(8 / 0.5)
    assert out["mfu"] == pytest.approx(flops / 0.5 / 1e12 / 1e-3)
    plugin.world_size = 2  # per device: half of it
    assert plugin.collect_metrics(State())["tflops_per_device"] == pytest.approx(flops / 0.5 / 1e12 / 2)
    # window: a slow step 30 steps ago no longer counts
    assert len(plugin.marks) == WINDOW + 1


def test_cpu_peak_measurement_is_positive():
    assert measure_cpu_peak_tflops(n=128, repeats=2) > 0


def test_metrics_reach_the_log_record():
    sees = LogRecords()
    seen = sees.records
    pm = PluginManager()
    pm.register("sees", sees)
    train(load_config(None, SMALL + ["train.train_iters=2", "train.eval_interval=null", "logger.metrics_file=false"]),
          plugin_manager=pm)
    assert "throughput" in pm.loaded  # on by default
    assert all(r["tflops_per_device"] > 0 and r["samples_per_sec"] > 0 and 0 < r["mfu"] for r in seen)
