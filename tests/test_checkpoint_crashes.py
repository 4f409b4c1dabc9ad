"""Checkpoints survive what kills real jobs: ``kill -9`` at any point of a save, a kill between an
async write and its publication, SIGTERM preemption (one process, and one rank of two), and loading
into another parallel layout. Every test here starts processes: marked slow (CI runs them)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from plugtron.checkpointing import layout
from plugtron.config import load_config
from plugtron.training import train

from helpers import HERE, SMALL, torchrun, torchrun_runs

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def victims(tmp_path, name, modes, overrides, env=None):
    """Runs of ``_ckpt_victim.py`` forked from one process, one per mode, in order (each resumes
    from what the previous left); returns one record per run (see that script)."""
    out, log = tmp_path / f"{name}.json", tmp_path / f"{name}.log"
    with open(log, "w") as f:  # a file, not a pipe: a killed run's orphans can never hold it open
        proc = subprocess.run([sys.executable, str(HERE / "_ckpt_victim.py"), str(out), ",".join(modes), *overrides],
                              stdout=f, stderr=subprocess.STDOUT, timeout=1200, env={**ENV, **(env or {})},
                              start_new_session=True)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return json.loads(out.read_text())


def finished(record):
    assert not record["killed"] and record["exit"] == 0 and record["summary"], record
    return record["summary"]


def test_kill_9_at_20_points_of_a_save_then_resume(tmp_path):
    """From the same checkpoint (iteration 2) a run is killed at 20 points of its save of iteration 3,
    from the staging mkdir to the retention after the publish; after each kill a resume loads the
    newest complete checkpoint and finishes with the uninterrupted run's final loss and weights."""
    crash = SMALL + ["train.eval_interval=null", "train.train_iters=4", "checkpoint.save_interval=1",
                     "checkpoint.most_recent_k=2"]
    base, root = tmp_path / "base", tmp_path / "ckpt"
    ck = crash + [f"checkpoint.save={root}", f"checkpoint.load={root}"]
    reset = {"PLUGTRON_VICTIM_RESET": str(base)}
    # one process: the uninterrupted reference, the checkpoint of iteration 2, the counted save
    ref, _, counted = map(finished, victims(tmp_path, "prepare", [
        f"never+checkpoint.save={tmp_path / 'ref'}+checkpoint.load=null",
        f"never+checkpoint.save={base}+checkpoint.load=null+train.exit_interval=2", "count"], ck, env=reset))
    starts = counted["save_starts"]
    per_save = starts[1] - starts[0]  # file-system operations of the save of iteration 3
    assert per_save >= 25, counted["ops"]
    points = sorted({1 + round(i * (per_save - 1) / 19) for i in range(20)})
    assert len(points) == 20
    runs = victims(tmp_path, "chain", [m for k in points for m in (f"op:{k}", "never")], ck, env=reset)
    for k, killed, resumed in zip(points, runs[0::2], runs[1::2]):
        assert killed["killed"] and killed["latest"] in (2, 3), (k, killed)  # 2, or 3 once published
        final = finished(resumed)
        assert final["losses"][-1] == ref["losses"][-1] and final["digest"] == ref["digest"], k
        assert resumed["complete"] == [3, 4], (k, resumed["complete"])


def test_kill_between_async_write_and_publish_leaves_a_loadable_checkpoint(tmp_path):
    base = SMALL + ["train.eval_interval=null", "train.train_iters=8", "checkpoint.save_interval=2",
                    "checkpoint.async_save=true"]
    ref = finished(victims(tmp_path, "ref", ["never"], base + [f"checkpoint.save={tmp_path / 'ref'}"])[0])
    root = tmp_path / "ckpt"
    killed, resumed = victims(tmp_path, "chain", ["publish:2", "never"],  # step 4's write done, unpublished
                              base + [f"checkpoint.save={root}", f"checkpoint.load={root}"])
    assert killed["killed"] and killed["latest"] == 2
    final = finished(resumed)
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
    # the resume and the uninterrupted reference: one launch
    resumed, ref = torchrun_runs(tmp_path, "after", [base + ck + ["checkpoint.fully_parallel_load=true"], base], env=digest)
    assert resumed["losses"] == ref["losses"][stopped[0]:] and resumed["digest"] == ref["digest"]
    one = train(load_config(None, base + [f"checkpoint.load={root}", "train.skip_train=true"]))
    assert abs(one["eval"]["valid"][-1][1] - ref["eval"]["valid"][-1][1]) < 1e-5


PRECISIONS = ["null", "bf16-mixed"]


@pytest.fixture(scope="module")
def dp2_resumes(tmp_path_factory):
    """precision -> (uninterrupted, first half, resumed second half): all six runs in one launch,
    one after another (each resume reads what the run before it saved)."""
    tmp = tmp_path_factory.mktemp("dp2_resumes")
    runs = []
    for precision in PRECISIONS:
        base = SMALL + ["optimizer.use_distributed_optimizer=true", "train.train_iters=20", "train.eval_interval=null",
                        f"mixed_precision={precision}"]
        ck = [f"checkpoint.save={tmp / precision}", f"checkpoint.load={tmp / precision}"]
        runs += [base, base + ck + ["train.exit_interval=10"], base + ck]
    got = torchrun_runs(tmp, "runs", runs, env={"PLUGTRON_TEST_DIGEST": "1"})
    return {precision: got[3 * i:3 * i + 3] for i, precision in enumerate(PRECISIONS)}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_dp2_distributed_optimizer_resume_is_bit_identical(dp2_resumes, precision):
    ref, first, second = dp2_resumes[precision]
    assert first["losses"] + second["losses"] == ref["losses"] and second["digest"] == ref["digest"]


def test_relayout_tp2_to_tp1(tmp_path):
    base = SMALL + ["train.train_iters=4", "train.eval_interval=4", "train.eval_iters=2"]
    # exit_within: the workers used to linger 2-3 s (idle machine) to 20 s (busy) in the interpreter's
    # shutdown after their summaries (plugtron.cli.entry, plugtron.checkpointing.write_queue); 1-2 s
    # now. 10 s: a busy CI machine must not fail it, and a return of the 14-21 s linger still does.
    saved = torchrun(tmp_path, "tp2", base + ["model.tensor_model_parallel_size=2", f"checkpoint.save={tmp_path}"],
                     exit_within=10)
    one = train(load_config(None, base + [f"checkpoint.load={tmp_path}", "train.skip_train=true"]))
    assert abs(one["eval"]["valid"][-1][1] - saved["eval"]["valid"][-1][1]) < 1e-5


def test_relayout_tp1_to_pp2(tmp_path):
    base = SMALL + ["train.train_iters=4", "train.eval_interval=4", "train.eval_iters=2"]
    saved = train(load_config(None, base + [f"checkpoint.save={tmp_path}"]))
    two = torchrun(tmp_path, "pp2", base + ["model.pipeline_model_parallel_size=2", f"checkpoint.load={tmp_path}",
                                             "train.skip_train=true"])
    assert abs(two["eval"]["valid"][-1][1] - saved["eval"]["valid"][-1][1]) < 1e-5
