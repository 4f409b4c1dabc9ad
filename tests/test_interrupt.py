"""Ctrl-C never loses a run (issue 29, point 3): SIGINT to a real ``plugtron train`` (default run
directory) saves after the current step and exits 0 saying where and how to resume; the resume
continues exactly as an uninterrupted run; a second Ctrl-C aborts at once; the preemption plugin's
fields still pick their own signal. Under torchrun, Ctrl-C reaches the launcher and every worker, and
the launcher passes it on to the workers once more: that repeat is not a second Ctrl-C."""

import glob
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from helpers import SMALL
from plugtron.training import interrupt

PLUGTRON = shutil.which("plugtron") or pytest.fail("the plugtron command is not installed (pip install -e .)")
RUN = SMALL + ["train.train_iters=300", "train.eval_interval=null", "logger.log_throughput=false"]


def _env():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WORLD_SIZE", None)
    return env


def _interrupt(cwd, args, at_iter, signals=(signal.SIGINT,)):
    """Start ``plugtron train``, send ``signals`` once iteration ``at_iter`` is logged; (rc, output)."""
    proc = subprocess.Popen([PLUGTRON, "train", *args], cwd=cwd, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines, deadline, left = [], time.time() + 300, list(signals)
    for line in proc.stdout:
        lines.append(line)
        # the first signal at the iteration, a second one once the first is acknowledged (a person
        # pressing twice; two signals sent at once would reach Python's handler as one)
        if (f"iter {at_iter:>6}/" in line and len(left) == len(signals)) or (left and "received: saving" in line):
            proc.send_signal(left.pop(0))
            if not left:
                break
        assert time.time() < deadline, "".join(lines)
    lines.extend(proc.stdout)
    return proc.wait(timeout=300), "".join(lines)


def _losses(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return {r["iteration"]: r["loss"] for r in map(json.loads, f) if "loss" in r and r.get("split") is None}


@pytest.mark.slow
def test_ctrl_c_saves_and_the_resume_is_exact(tmp_path):
    rc, err = _interrupt(tmp_path, RUN, at_iter=3)
    assert rc == 0, err
    assert "Ctrl-C (SIGINT) received: saving a checkpoint after this step" in err
    (run_dir,) = glob.glob(str(tmp_path / "runs" / "tiny-*"))  # the default run directory
    stopped = int(open(os.path.join(run_dir, "latest_checkpointed_iteration.txt")).read())
    assert 3 <= stopped < 300
    assert f"stopped at iteration {stopped}: Ctrl-C (SIGINT) received; checkpoint in {run_dir}" in err
    assert f"resume: plugtron train <the same config and overrides> checkpoint.load={run_dir}" in err

    end = stopped + 2
    for args, cwd in (([f"checkpoint.load={run_dir}"], tmp_path), ([f"checkpoint.save={tmp_path / 'ref'}"], tmp_path)):
        proc = subprocess.run([PLUGTRON, "train", *RUN, f"train.exit_interval={end}", *args], cwd=cwd, env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    resumed, reference = _losses(run_dir), _losses(tmp_path / "ref")
    assert [resumed[i] for i in range(1, end + 1)] == [reference[i] for i in range(1, end + 1)]


@pytest.mark.slow
def test_a_second_ctrl_c_aborts_at_once(tmp_path):
    rc, out = _interrupt(tmp_path, RUN + ["checkpoint.save=a"], at_iter=2, signals=(signal.SIGINT, signal.SIGINT))
    assert rc == 130 and "plugtron: interrupted" in out, out


class SendAt:
    """Sends ``sig`` to this process after iteration ``at`` (in-process runs: no subprocess needed)."""

    def __init__(self, sig, at=2):
        self.sig, self.at = sig, at

    def on_step(self, state, metrics):
        if state.iteration == self.at:
            os.kill(os.getpid(), self.sig)


def _run_in_process(tmp_path, sig, extra=()):
    from plugtron.config import load_config
    from plugtron.plugin_manager import PluginManager
    from plugtron.training import train

    pm = PluginManager()
    pm.register("send_at", SendAt(sig))
    return train(load_config(None, RUN + [f"checkpoint.save={tmp_path / 'ck'}", *extra]), plugin_manager=pm)


@pytest.mark.parametrize("sig, extra, reason", [
    (signal.SIGTERM, [], "SIGTERM received"),
    (signal.SIGINT, [], "Ctrl-C (SIGINT) received"),
    # the preemption plugin's documented fields keep their signal (SIGUSR1 here) and its message
    (signal.SIGUSR1, ["train.exit_signal_handler=true", "train.exit_signal=SIGUSR1"], "received SIGUSR1 (preemption)"),
])
def test_a_signal_saves_after_the_step_and_stops(tmp_path, sig, extra, reason):
    before = signal.getsignal(sig)
    summary = _run_in_process(tmp_path, sig, extra)
    # the plugin checks its flag in its own on_step, which may run before the one that sent the signal
    stopped = summary["iteration"]
    assert (stopped == 2 or (extra and stopped == 3)) and summary["stop_reason"] == reason, summary
    assert (tmp_path / "ck" / "latest_checkpointed_iteration.txt").read_text().strip() == str(stopped)
    assert signal.getsignal(sig) == before  # handlers restored after the run


def test_a_run_that_saves_nothing_keeps_python_ctrl_c(tmp_path):
    from plugtron.config import load_config
    from plugtron.plugin_manager import PluginManager
    from plugtron.training import train

    pm = PluginManager()
    pm.register("send_at", SendAt(signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        train(load_config(None, RUN + ["checkpoint.save=null"]), plugin_manager=pm)


@pytest.mark.parametrize("torchrun, aborts", [(True, False), (False, True)])
def test_torchruns_repeat_of_the_same_ctrl_c_is_not_a_second_one(monkeypatch, torchrun, aborts):
    """torchrun's launcher forwards the SIGINT it got to its workers within milliseconds; without
    torchrun a repeat is a person's second Ctrl-C. Later than the window it aborts either way."""
    from plugtron.config import load_config

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none") if torchrun else monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    stop = interrupt.InterruptStop(load_config(None, []), rank0=False)
    stop._handler(signal.SIGINT, None)
    if aborts:
        with pytest.raises(KeyboardInterrupt):
            stop._handler(signal.SIGINT, None)
        return
    stop._handler(signal.SIGINT, None)  # the launcher's forward: still one Ctrl-C
    assert stop.reason() == "Ctrl-C (SIGINT) received"
    stop.received_at -= interrupt.FORWARD_WINDOW_S  # a person pressing again, later
    with pytest.raises(KeyboardInterrupt):
        stop._handler(signal.SIGINT, None)


@pytest.mark.slow
def test_ctrl_c_to_a_torchrun_group_saves_after_the_step_and_the_resume_is_exact(tmp_path):
    """Ctrl-C in a terminal: SIGINT to the whole process group of ``torchrun ... -m plugtron train``.
    The worker saves after its current step and exits 0; torchrun itself (not plugtron) then ends
    with its SignalException traceback and status 1. One worker: the launcher's signal handling does
    not depend on the number of workers, and one process trains with the same numerics as the
    in-process reference and resume, so "exact" can be checked bit for bit."""
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "-m", "plugtron",
                             "train", *RUN, "checkpoint.save=ck"], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "iter      3/" in line:
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the launcher and its worker
    rc, out = proc.wait(timeout=300), "".join(lines)
    assert rc == 1 and "SignalException" in out and "Sending process" in out, out  # torchrun's own exit
    assert out.count("Ctrl-C (SIGINT) received: saving a checkpoint after this step") == 1, out
    assert "plugtron: interrupted" not in out, out  # the launcher's repeat was not taken for a second Ctrl-C
    ck = tmp_path / "ck"
    stopped = int((ck / "latest_checkpointed_iteration.txt").read_text())
    assert 3 <= stopped < 300 and f"stopped at iteration {stopped}: Ctrl-C (SIGINT) received; checkpoint in {ck}" in out
    assert f"resume: torchrun --nproc_per_node=1 -m plugtron train <the same config and overrides> checkpoint.load={ck}" in out

    import torch

    from plugtron.config import load_config
    from plugtron.training import train

    end, threads = stopped + 2, torch.get_num_threads()
    torch.set_num_threads(1)  # as the worker (OMP_NUM_THREADS=1): the same kernels, the same numbers
    try:
        for args in ([f"checkpoint.load={ck}", f"checkpoint.save={ck}"], [f"checkpoint.save={tmp_path / 'ref'}"]):
            train(load_config(None, RUN + [f"train.exit_interval={end}", *args]))
    finally:
        torch.set_num_threads(threads)
    resumed, reference = _losses(ck), _losses(tmp_path / "ref")
    assert [resumed[i] for i in range(1, end + 1)] == [reference[i] for i in range(1, end + 1)]


def test_a_rank_stopped_by_another_ranks_request_names_a_reason():
    """The stop is agreed across ranks after each rank checked its own policies: a rank whose own
    check came just before its Ctrl-C arrived (or that got none) still says why it stops, never
    "stopped at iteration N: None" (seen with two ranks)."""
    from types import SimpleNamespace

    from plugtron.config import load_config
    from plugtron.training.trainer import Trainer

    trainer = Trainer.__new__(Trainer)  # only the stop agreement: no model
    trainer.stop_policies, trainer.interrupt = [], None
    # what the agreement hands a rank that did not ask: stop (and save), no reason of its own
    trainer.state = SimpleNamespace(should_stop=True, should_save=True, stop_reason=None)
    assert trainer.agree_stop() and trainer.state.stop_reason == "another rank asked to stop"
    trainer.interrupt = interrupt.InterruptStop(load_config(None, []), rank0=False)
    trainer.interrupt.received = signal.SIGINT  # arrived after this rank's own check
    trainer.state = SimpleNamespace(should_stop=True, should_save=True, stop_reason=None)
    assert trainer.agree_stop() and trainer.state.stop_reason == "Ctrl-C (SIGINT) received"
