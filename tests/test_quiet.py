"""Quiet by default: the warnings in ``plugtron.platform.quiet.FILTERS`` (Megatron/torch warnings no
user can act on) never reach a ``plugtron`` command's stderr; ``--verbose`` shows them; warnings of
plugtron itself and anything not in the table stay visible."""

import os
import shutil
import subprocess
import sys

import pytest

from helpers import SMALL

from plugtron.platform import quiet

PLUGTRON = shutil.which("plugtron") or pytest.fail("the plugtron command is not installed (pip install -e .)")


def assert_quiet(stderr: str) -> None:
    """None of the table's messages in ``stderr`` (shared with other command-line tests)."""
    for f in quiet.FILTERS:
        prefix = quiet._literal_prefix(f.message)
        assert prefix not in stderr, f"hidden warning shown: {prefix!r}\n{stderr}"


def _cli(cwd, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run([PLUGTRON, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stderr


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from plugtron.config import load_config
    from plugtron.training import train

    root = tmp_path_factory.mktemp("quiet") / "ckpt"
    train(load_config(None, SMALL + ["train.train_iters=2", f"checkpoint.save={root}"]))
    return root


def test_a_checkpoint_load_is_quiet_by_default_and_verbose_shows_all(saved, tmp_path):
    # generate: imports torch and Megatron, builds the model and loads a distributed checkpoint
    args = ["generate", str(saved), "--prompt", "a", "--max-new-tokens", "1"]
    err = _cli(tmp_path, *args)
    assert_quiet(err)
    assert err == "", err  # nothing else on this machine either
    loud = _cli(tmp_path, "--verbose", *args)
    for shown in ("Apex is not installed", "Please use DTensor instead and we are deprecating ShardedTensor"):
        assert shown in loud, loud


def test_a_training_run_is_quiet_and_logging_level_10_shows_them(saved, tmp_path):
    err = _cli(tmp_path, "train", *SMALL, "train.train_iters=2", "checkpoint.save=null")
    assert_quiet(err)
    loud = _cli(tmp_path, "train", *SMALL, "train.train_iters=2", f"checkpoint.load={saved}", "checkpoint.save=null",
                "logger.logging_level=10")
    assert "Apex is not installed" in loud and "ShardedTensor" in loud, loud


def test_the_table_hides_only_what_it_lists():
    assert quiet.hidden(UserWarning, "megatron.core.models.backends", "Apex is not installed. Falling back to Torch Norm")
    assert quiet.hidden(FutureWarning, "plugtron.platform.cpu_shims",
                        "Please use DTensor instead and we are deprecating ShardedTensor.")
    assert not quiet.hidden(UserWarning, "plugtron.plugins.nan_guard", "Apex is not installed")  # module differs
    assert not quiet.hidden(UserWarning, "megatron.core.transformer", "some other warning")
    assert not quiet.hidden(UserWarning, "plugtron.training", "checkpoint: parallel layout changed")


def test_install_keeps_other_warnings_and_uninstall_restores(tmp_path):
    code = (
        "import warnings\nfrom plugtron.platform import quiet\nquiet.install()\n"
        "warnings.warn_explicit('Apex is not installed. x', UserWarning, 'f.py', 1, module='megatron.core.m')\n"
        "warnings.warn_explicit('plugtron: own warning', UserWarning, 'g.py', 1, module='plugtron.x')\n"
        "quiet.uninstall()\n"
        "warnings.warn_explicit('Apex is not installed. y', UserWarning, 'h.py', 2, module='megatron.core.m')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert "Apex is not installed. x" not in proc.stderr
    assert "plugtron: own warning" in proc.stderr and "Apex is not installed. y" in proc.stderr, proc.stderr
