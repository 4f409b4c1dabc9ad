"""examples/slurm/plugtron.sbatch, submitted to stand-ins for Slurm: ``sbatch`` (reads the #SBATCH
lines, sets the job's SLURM_* variables, runs the script), ``scontrol`` (expands the node list) and
``srun`` (runs its command once per node, as one task per node). ``torchrun`` only records what it
was asked to run. No cluster is needed; what the script would execute is asserted."""

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "slurm" / "plugtron.sbatch"

STUBS = {
    # sbatch SCRIPT ARGS...: record the directives, then run the job on the two "allocated" nodes.
    "sbatch": """#!/bin/bash
grep '^#SBATCH' "$1" | sed 's/^#SBATCH //' > "$LOG/sbatch_directives"
nodes=$(sed -n 's/^--nodes=//p' "$LOG/sbatch_directives")
export SLURM_JOB_ID=4242 SLURM_JOB_NAME=plugtron SLURM_NNODES=$nodes SLURM_JOB_NODELIST="gpu[017-018]"
exec bash "$@"
""",
    "scontrol": """#!/bin/bash
[ "$1 $2" = "show hostnames" ] && [ "$3" = "gpu[017-018]" ] || { echo "scontrol stub: unexpected $*" >&2; exit 1; }
echo gpu017; sleep 0.2; echo gpu018   # two writes, as a real scontrol may: a reader that stops
                                     # after line 1 (head -n 1) makes the second one SIGPIPE
""",
    "srun": """#!/bin/bash
printf '%s\\n' "$@" > "$LOG/srun_args"
while [[ "$1" == --* ]]; do shift; done   # srun's own options; then the command of each task
for node in $(seq 0 $((SLURM_NNODES - 1))); do SLURM_NODEID=$node SLURM_PROCID=$node "$@" || exit $?; done
""",
    "torchrun": """#!/bin/bash
printf '%s\\n' "$@" > "$LOG/torchrun_node$SLURM_NODEID"
env | grep -E '^(PLUGTRON_CACHE_DIR|OMP_NUM_THREADS|TORCH_ELASTIC_SHUTDOWN_TIMEOUT)=' | sort > "$LOG/env_node$SLURM_NODEID"
""",
}


def _submit(tmp_path, *args):
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    for name, text in STUBS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log), "SHARED": "/lustre/me"}
    env.pop("PLUGTRON_CACHE_DIR", None)  # the test suite's own; the script must set the job's
    proc = subprocess.run(["sbatch", str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return log, proc.stdout


def test_the_sbatch_script_starts_one_torchrun_per_node_with_a_shared_rendezvous(tmp_path):
    log, out = _submit(tmp_path, "train.train_iters=1000", "model.tensor_model_parallel_size=8")
    directives = (log / "sbatch_directives").read_text().splitlines()
    assert "--nodes=2" in directives and "--ntasks-per-node=1" in directives
    assert "--signal=TERM@120" in directives  # preemption: SIGTERM 120 s before the time limit
    assert (log / "srun_args").read_text().splitlines()[:3] == ["--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]

    ckpt = "/lustre/me/checkpoints/plugtron"
    expected = ["--nnodes=2", "--nproc_per_node=8", "--rdzv_backend=c10d", "--rdzv_endpoint=gpu017:29500",
                "--rdzv_id=4242", "-m", "plugtron", "train", f"checkpoint.save={ckpt}", f"checkpoint.load={ckpt}",
                "train.exit_signal_handler=true", "train.train_iters=1000", "model.tensor_model_parallel_size=8"]
    for node in (0, 1):  # the same command on every node: the rendezvous assigns the ranks
        assert (log / f"torchrun_node{node}").read_text().splitlines() == expected
        assert (log / f"env_node{node}").read_text().splitlines() == [
            "OMP_NUM_THREADS=8", "PLUGTRON_CACHE_DIR=/lustre/me/.cache/plugtron", "TORCH_ELASTIC_SHUTDOWN_TIMEOUT=100"]
    assert "2 nodes x 8 GPUs, rendezvous gpu017:29500" in out


def test_the_script_arguments_are_valid_plugtron_overrides():
    """What the script adds is a config plugtron accepts (load is resumable once save has written)."""
    from plugtron.config import load_config

    cfg = load_config(None, ["checkpoint.save=/tmp/x", "checkpoint.load=/tmp/x", "train.exit_signal_handler=true"])
    assert cfg.train.exit_signal_handler and cfg.checkpoint.load == cfg.checkpoint.save
