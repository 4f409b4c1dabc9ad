"""The run summary: printed at the end of a run with the right paths; says when nothing was saved."""

import logging
import os

from plugtron.config import load_config
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from helpers import SMALL


def _run(caplog, *extra):
    pm = PluginManager()
    with caplog.at_level(logging.INFO, logger="plugtron"):
        train(load_config(None, SMALL + ["train.train_iters=4", "train.eval_interval=2", "train.eval_iters=1", *extra]),
              plugin_manager=pm)
    summary = pm.loaded["run_summary"].text
    assert summary in caplog.text  # logged, not only kept
    return summary, pm


def test_summary_names_checkpoints_metrics_and_resume(tmp_path, caplog):
    summary, pm = _run(caplog, f"checkpoint.save={tmp_path}")
    assert "iterations: 0 -> 4 (4 in this run" in summary
    assert f"tokens seen in this run: {4 * 8 * 64:,} | wall" in summary  # pretraining: every position, no padding
    assert f"checkpoints: {tmp_path}" in summary
    assert f"resume: plugtron train <the same config and overrides> checkpoint.load={tmp_path}" in summary
    assert f"generate: plugtron generate {tmp_path} --prompt" in summary
    assert f"metrics: {tmp_path / 'metrics.jsonl'}" in summary and (tmp_path / "metrics.jsonl").exists()
    assert "best" in summary and "n/a" not in summary  # train and valid losses were seen


def test_summary_says_when_nothing_was_saved(caplog):
    summary, _ = _run(caplog, "logger.metrics_file=false")
    assert "checkpoints: none saved (set checkpoint.save=DIR" in summary
    assert "metrics:" not in summary and "generate:" not in summary
    summary, _ = _run(caplog)
    assert "metrics: not written (nothing saved; set logger.metrics_dir=DIR)" in summary


def test_resume_command_names_the_launcher():
    """Issue 29, point 12: a torchrun run's resume command is a torchrun command."""
    from plugtron.plugins.run_summary import launcher

    assert launcher({}) == "plugtron"
    assert launcher({"LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "2"}) == "plugtron"  # not torchrun's environment
    torchrun = {"TORCHELASTIC_RUN_ID": "x", "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "2"}
    assert launcher(torchrun) == "torchrun --nproc_per_node=2 -m plugtron"
    assert launcher({**torchrun, "WORLD_SIZE": "8"}) == (
        "torchrun --nnodes=4 <the same rendezvous options> --nproc_per_node=2 -m plugtron")
