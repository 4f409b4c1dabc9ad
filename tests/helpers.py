"""Helpers shared by the tests: the small model overrides, a torchrun launcher, test plugins."""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from plugtron.checkpointing.contents import unwrap


def weights_digest(model) -> str:
    """SHA-256 over every parameter's bytes in name order: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for chunk in model:
        for name, tensor in sorted(unwrap(chunk).state_dict().items()):
            if torch.is_tensor(tensor):
                h.update(name.encode())
                h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class LogRecords:
    """Keeps every ``on_log`` record of a run, in order (``.records``)."""

    def __init__(self):
        self.records = []

    def on_log(self, state, log):
        self.records.append(dict(log))


class WeightsDigest:
    """Records the final weights' digest when training ends."""

    def __init__(self):
        self.value = None

    def on_train_end(self, state):
        self.value = weights_digest(state.model)


class PidFile:
    """Writes this rank's pid to ``<path>.rank<R>`` after step 2: every plugin's on_train_start (the
    preemption handler included) has run by then, so a test may signal the process."""

    def __init__(self, path):
        self.path = path

    def on_step(self, state, metrics):
        if metrics.iteration == 2:
            with open(f"{self.path}.rank{os.environ.get('RANK', '0')}.tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(f"{self.path}.rank{os.environ.get('RANK', '0')}.tmp", f"{self.path}.rank{os.environ.get('RANK', '0')}")


class Perturb:
    """Nudges one weight on one rank after step 2: replicas that silently drift apart."""

    def __init__(self, rank):
        self.rank = int(rank)

    def on_step(self, state, metrics):
        if metrics.iteration == 2 and int(os.environ.get("RANK", "0")) == self.rank:
            with torch.no_grad():
                next(state.model[0].parameters()).add_(1e-3)


class SlowRank:
    """Makes one rank a straggler: ``seconds`` of extra CPU work at the start of every step, as a
    slower CPU/GPU or a heavier data pipeline on that rank would. (CPU work, not ``time.sleep``: the
    straggler plugin measures the work a rank does itself, which a sleep is not; see its docstring.)"""

    def __init__(self, spec):
        rank, seconds = spec.split(":")
        self.rank, self.seconds = int(rank), float(seconds)

    def on_step_start(self, state):
        if int(os.environ.get("RANK", "0")) == self.rank:
            import time

            end = time.thread_time() + self.seconds
            while time.thread_time() < end:
                pass


class Counter:
    """A plugin with state: counts steps across resumes through on_save/on_load."""

    def __init__(self):
        self.steps = 0
        self.loaded = None

    def on_step(self, state, metrics):
        self.steps += 1

    def on_save(self, state, checkpoint_dir):
        return {"steps": self.steps, "tensor": torch.arange(3)}

    def on_load(self, state, checkpoint_dir, plugin_state):
        self.loaded = plugin_state
        self.steps = plugin_state["steps"]


HERE = Path(__file__).parent
THEN = "--then"  # separates the runs of one launch (tests/_dist_train.py)
# A small, fast model; vocab padded to 512 for every TP size so TP=1 and TP=2 have equal shapes.
SMALL = ["model.num_layers=2", "model.hidden_size=64", "model.seq_length=64", "dataset.sequence_length=64",
         "model.make_vocab_size_divisible_by=256", "train.micro_batch_size=2", "train.global_batch_size=8",
         "scheduler.lr_warmup_iters=1", "logger.log_interval=1"]


def torchrun(tmp_path, name, overrides, env=None, expect_rc=0, read=True, exit_within=None):
    """Two gloo processes on ``tests/_dist_train.py``; returns the summary of a rank that has the
    losses (the last pipeline stage), else rank 0's (``read=False``: the processes' output).

    ``exit_within`` (seconds): the launch must end that soon after the last rank wrote its summary
    (the processes' shutdown plus torchrun's; see plugtron.cli.entry)."""
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "_dist_train.py"), str(out), *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    ended = time.time()
    assert proc.returncode == expect_rc, proc.stdout[-3000:] + proc.stderr[-3000:]
    if not read:
        return proc.stdout + proc.stderr
    files = [Path(f"{out}.rank{r}") for r in range(2)]
    if exit_within is not None:
        linger = ended - max(f.stat().st_mtime for f in files)
        assert linger < exit_within, f"the processes took {linger:.1f}s to exit after their summaries"
    summaries = [json.loads(f.read_text()) for f in files]
    return next((s for s in summaries if s["losses"]), summaries[0])


def torchrun_runs(tmp_path, name, runs, env=None):
    """Several runs (one override list each) one after another in ONE two-process launch: each
    launch imports torch and Megatron anew (seconds), a tiny run takes a fraction of that. Returns
    one summary per run, picked as :func:`torchrun` picks one. A failing run fails the launch."""
    if len(runs) == 1:
        return [torchrun(tmp_path, name, runs[0], env=env)]
    out = tmp_path / f"{name}.json"
    args = [a for i, overrides in enumerate(runs) for a in ([THEN] if i else []) + list(overrides)]
    torchrun(tmp_path, name, args, env=env, read=False)
    found = []
    for i in range(len(runs)):
        summaries = [json.loads(Path(f"{out}.run{i}.rank{r}").read_text()) for r in range(2)]
        found.append(next((s for s in summaries if s["losses"]), summaries[0]))
    return found


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(args, envs=({}, {}), cwds=(None, None), timeout=600):
    """Two "nodes" on this machine: two torchrun agents (one process each) that meet through a c10d
    rendezvous on localhost, as two hosts would; no --node_rank, so the rendezvous assigns ranks.
    ``args`` follow torchrun's (e.g. ``["-m", "plugtron", "train", ...]``). Returns
    ``[(returncode, output), ...]`` per node."""
    port = free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
           "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", f"--rdzv_id=test{port}", *args]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
                              env={**os.environ, "OMP_NUM_THREADS": "1", **env})
             for env, cwd in zip(envs, cwds)]
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, out) for p, out in zip(procs, outs)]
