"""A run always leaves something: ``plugtron train`` without ``checkpoint.save`` saves under
``runs/<name>-<UTC time>/`` and says where at the start and the end; resuming a finished run says so;
extending one is explained in iterations with the flag to set. Python's ``train(cfg)`` adds nothing."""

import os
import re
import shutil
import subprocess

import pytest

from helpers import SMALL

PLUGTRON = shutil.which("plugtron") or pytest.fail("the plugtron command is not installed (pip install -e .)")
FAST = SMALL + ["train.train_iters=2"]


def _train(cwd, *args, rc=0):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([PLUGTRON, "train", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == rc, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, proc.stderr


def test_default_run_dir_resume_finished_and_extend(tmp_path):
    _, out = _train(tmp_path, *FAST)  # log lines go to standard error
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and re.fullmatch(r"tiny-\d{8}-\d{6}", runs[0].name), runs
    run = runs[0]
    assert f"run directory: {run}" in out  # at the start
    assert f"checkpoints: {run}" in out and f"plugtron generate {run}" in out  # at the end (run summary)
    assert (run / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    assert (run / "metrics.jsonl").is_file()

    # resumed at train_iters: one clear line, exit 0, saves back into the same directory
    _, out = _train(tmp_path, *FAST, f"checkpoint.load={run}")
    assert f"nothing to train: {run / 'iter_0000002'} is already at iteration 2 (train.train_iters=2); " \
           "to train further, raise it, e.g. train.train_iters=4 scheduler.override_opt_param_scheduler=true" in out
    assert len(list((tmp_path / "runs").iterdir())) == 1

    # extended without the flag: the schedule difference in iterations, with the flag to set
    _, err = _train(tmp_path, *SMALL, "train.train_iters=4", f"checkpoint.load={run}", rc=2)
    assert "scheduler.lr_decay_iters (default: train.train_iters): saved 2 iterations, configured 4 iterations" in err
    assert "To continue it to train.train_iters=4 with the decay stretched" in err
    assert "add scheduler.override_opt_param_scheduler=true" in err and "samples" not in err, err
    assert err.count("plugtron: error") == 1 and "Traceback" not in err

    _train(tmp_path, *SMALL, "train.train_iters=4", f"checkpoint.load={run}", "scheduler.override_opt_param_scheduler=true")
    assert (run / "latest_checkpointed_iteration.txt").read_text().strip() == "4"


def test_save_null_saves_nothing_and_runs_dir_and_yaml_name(tmp_path):
    (tmp_path / "my_exp.yaml").write_text("train:\n  train_iters: 2\n")
    _train(tmp_path, *SMALL, "checkpoint.save=null")
    assert os.listdir(tmp_path) == ["my_exp.yaml"]  # nothing saved, nothing left behind
    out, _ = _train(tmp_path, "my_exp.yaml", *SMALL, "checkpoint.runs_dir=out")
    (run,) = (tmp_path / "out").iterdir()
    assert run.name.startswith("my_exp-") and (run / "iter_0000002").is_dir()


def test_python_train_applies_no_default(tmp_path, monkeypatch):
    from plugtron.config import load_config
    from plugtron.training import train

    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, FAST)
    train(cfg)
    assert cfg.checkpoint.save is None and os.listdir(tmp_path) == []
