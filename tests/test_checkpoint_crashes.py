"""Checkpoints survive what kills real jobs: ``kill -9`` at any point of a save, a kill between an
async write and its publication, SIGTERM preemption (one process, and one rank of two), and loading
into another parallel layout. Every test here starts processes: marked slow (CI runs them)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from plugtron.checkpointing import layout
from plugtron.config import load_config
from plugtron.training import train

from helpers import HERE, SMALL, torchrun

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
CRASH = SMALL + ["train.eval_interval=null", "train.train_iters=24", "checkpoint.save_interval=1",
                 "checkpoint.most_recent_k=2"]


def victim(tmp_path, name, mode, overrides):
    """Run ``_ckpt_victim.py`` in its own session (its SIGKILL takes its whole process group,
    helpers included, and not pytest). Returns (returncode, summary or None)."""
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, str(HERE / "_ckpt_victim.py"), str(out), mode, *overrides],
                          capture_output=True, text=True, timeout=600, env=ENV, start_new_session=True)
    summary = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, summary, proc.stderr[-3000:]


def assert_newest_is_loadable(root):
    it = layout.latest_iteration(str(root))
    if it is not None:
        layout.verify(layout.iter_path(str(root), it))
    return it


def test_kill_9_at_20_points_of_a_save_then_resume(tmp_path):
    rc, ref, err = victim(tmp_path, "ref", "never", CRASH + [f"checkpoint.save={tmp_path / 'ref'}"])
    assert rc == 0, err
    root = tmp_path / "ckpt"
    ck = [f"checkpoint.save={root}", f"checkpoint.load={root}"]
    rc, counted, err = victim(tmp_path, "count", "count", CRASH + ck + ["train.exit_interval=1"])
    assert rc == 0, err
    per_save = len(counted["ops"])  # file-system operations of one save (a first one, no retention)
    assert per_save >= 25, counted["ops"]
    shutil.rmtree(root)
    # 20 kill points spread over a save, from its first mkdir to the retention after the publish
    points = sorted({1 + round(i * (per_save + 6) / 19) for i in range(20)})
    assert len(points) == 20
    resumed_from = []
    for k in points:
        rc, summary, err = victim(tmp_path, f"k{k}", f"op:{k}", CRASH + ck)
        assert rc == -signal.SIGKILL, (k, rc, err)
        resumed_from.append(assert_newest_is_loadable(root))
        for it in layout.complete_iterations(str(root)):  # whatever carries a final name is whole
            layout.verify(layout.iter_path(str(root), it))
    assert resumed_from[-1] is not None and resumed_from[-1] > 0  # saves got published between kills
    rc, final, err = victim(tmp_path, "final", "never", CRASH + ck)
    assert rc == 0, err
    assert final["losses"][-1] == ref["losses"][-1] and final["digest"] == ref["digest"]
    assert layout.complete_iterations(str(root)) == [23, 24]


def test_kill_between_async_write_and_publish_leaves_a_loadable_checkpoint(tmp_path):
    base = SMALL + ["train.eval_interval=null", "train.train_iters=8", "checkpoint.save_interval=2",
                    "checkpoint.async_save=true"]
    rc, ref, err = victim(tmp_path, "ref", "never", base + [f"checkpoint.save={tmp_path / 'ref'}"])
    assert rc == 0, err
    root = tmp_path / "ckpt"
    ck = [f"checkpoint.save={root}", f"checkpoint.load={root}"]
    rc, _, err = victim(tmp_path, "killed", "publish:2", base + ck)  # the write of step 4 is done, unpublished
    assert rc == -signal.SIGKILL, err
    assert assert_newest_is_loadable(root) == 2
    assert any(n.endswith(layout.STAGING) for n in os.listdir(root))
    rc, final, err = victim(tmp_path, "final", "never", base + ck)
    assert rc == 0, err
    assert final["losses"] == ref["losses"][2:] and final["digest"] == ref["digest"]


def _wait_for_line(proc, needle, timeout=300):
    deadline = time.time() + timeout
    for line in proc.stdout:
        if needle in line:
            return
        assert time.time() < deadline, f"no {needle!r} within {timeout}s"
    raise AssertionError(f"process ended before printing {needle!r}")


def test_sigterm_finishes_the_step_saves_and_exits_0(tmp_path):
    base = SMALL + ["train.eval_interval=null", "train.train_iters=12", "train.exit_signal_handler=true"]
    ref = train(load_config(None, base))
    root = tmp_path / "ckpt"
    cmd = [sys.executable, "-m", "plugtron", "train", *base, f"checkpoint.save={root}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    _wait_for_line(proc, "iter      3/12")
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, rest[-3000:]
    stopped = layout.read_tracker(str(root))
    assert 3 <= stopped < 12 and "received SIGTERM (preemption)" in rest
    resumed = train(load_config(None, base + [f"checkpoint.save={root}", f"checkpoint.load={root}"]))
    assert resumed["iteration"] == 12 and len(resumed["losses"]) == 12 - stopped
    assert abs(resumed["losses"][-1] - ref["losses"][-1]) < 1e-6  # one-thread subprocess vs this process


def test_dp2_distributed_optimizer_sigterm_on_one_rank_resume_and_relayout(tmp_path):
    """DP=2 with the distributed optimizer: SIGTERM to rank 1 alone stops both ranks after the same
    step with a checkpoint; the resume ends bit-identical to an uninterrupted run; the checkpoint
    then loads into one process (DP=1) with the same eval loss."""
    base = SMALL + ["optimizer.use_distributed_optimizer=true", "train.train_iters=16", "train.eval_interval=16",
                    "train.eval_iters=2", "train.exit_signal_handler=true"]
    digest = {"PLUGTRON_TEST_DIGEST": "1"}
    ref = torchrun(tmp_path, "ref", base, env=digest)
    root = tmp_path / "ckpt"
    ck = [f"checkpoint.save={root}", f"checkpoint.load={root}"]
    out = tmp_path / "stopped.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "_dist_train.py"), str(out), *base, *ck]
    pidfile = tmp_path / "pid"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**ENV, **digest, "PLUGTRON_TEST_PIDFILE": str(pidfile)})
    deadline = time.time() + 300
    while not os.path.exists(f"{pidfile}.rank1"):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    os.kill(int(open(f"{pidfile}.rank1").read()), signal.SIGTERM)
    log = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, log[-3000:]
    stopped = [json.load(open(f"{out}.rank{r}"))["iteration"] for r in range(2)]
    assert stopped[0] == stopped[1] < 16 and layout.read_tracker(str(root)) == stopped[0]
    resumed = torchrun(tmp_path, "resumed", base + ck + ["checkpoint.fully_parallel_load=true"], env=digest)
    assert resumed["losses"] == ref["losses"][stopped[0]:] and resumed["digest"] == ref["digest"]
    one = train(load_config(None, base + [f"checkpoint.load={root}", "train.skip_train=true"]))
    assert abs(one["eval"]["valid"][-1][1] - ref["eval"]["valid"][-1][1]) < 1e-5


def test_relayout_tp2_to_tp1(tmp_path):
    base = SMALL + ["train.train_iters=4", "train.eval_interval=4", "train.eval_iters=2"]
    saved = torchrun(tmp_path, "tp2", base + ["model.tensor_model_parallel_size=2", f"checkpoint.save={tmp_path}"])
    one = train(load_config(None, base + [f"checkpoint.load={tmp_path}", "train.skip_train=true"]))
    assert abs(one["eval"]["valid"][-1][1] - saved["eval"]["valid"][-1][1]) < 1e-5


def test_relayout_tp1_to_pp2(tmp_path):
    base = SMALL + ["train.train_iters=4", "train.eval_interval=4", "train.eval_iters=2"]
    saved = train(load_config(None, base + [f"checkpoint.save={tmp_path}"]))
    two = torchrun(tmp_path, "pp2", base + ["model.pipeline_model_parallel_size=2", f"checkpoint.load={tmp_path}",
                                             "train.skip_train=true"])
    assert abs(two["eval"]["valid"][-1][1] - saved["eval"]["valid"][-1][1]) < 1e-5
