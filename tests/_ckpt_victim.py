"""Training runs that kill themselves (SIGKILL to their whole process group, as ``kill -9`` of a
job would) at a chosen moment of checkpointing. Used by the crash tests in test_checkpoint_crashes.py.

    [PLUGTRON_VICTIM_RESET=DIR] python _ckpt_victim.py OUT.json MODE[,MODE...] overrides...

Each MODE is one run, forked from this process (torch and Megatron are imported once), one after
another, all with the same overrides (so each resumes from what the previous one left):
``never`` | ``op:K`` (die at the K-th file-system operation performed while a save or publish is
running: mkdir, open for writing, torch.save, fsync, rename, replace, rmtree) | ``publish:N`` (die on
entering the N-th publish: an async write finished, not yet visible) | ``count`` (record the
operation names). A MODE may carry overrides of its own after ``+`` signs (``never+train.exit_interval=2``),
added after the common ones (so one process can make the reference run, the checkpoint the others
start from, and the counted run). After each run this process checks that every checkpoint directory with a final
name verifies against its manifest. With PLUGTRON_VICTIM_RESET, every run but ``never`` first
gets ``checkpoint.save`` replaced by a copy of DIR. OUT.json: one record per run (mode, how it ended, the newest
checkpoint, the run's summary with losses, final weights digest and operation log if it finished).
"""

import builtins
import json
import os
import shutil
import signal
import sys

import torch

from plugtron.checkpointing import layout, manager
from plugtron.config import load_config
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

sys.path.insert(0, os.path.dirname(__file__))
from helpers import WeightsDigest  # noqa: E402

_real_open = builtins.open
RUN = {"mode": "never", "target": 0, "ops": [], "save_starts": [], "active": False, "publishes": 0}


def _die():
    os.killpg(0, signal.SIGKILL)


def _counted(name, fn):
    def wrapper(*args, **kwargs):
        if RUN["active"] and RUN["mode"] in ("op", "count"):

            RUN["ops"].append(name)
            if RUN["mode"] == "op" and len(RUN["ops"]) == RUN["target"]:
                _die()
        return fn(*args, **kwargs)

    return wrapper


def _open(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+"):
        return _counted("open-write", _real_open)(file, mode, *args, **kwargs)
    return _real_open(file, mode, *args, **kwargs)


def _active(fn):
    def wrapper(*args, **kwargs):
        RUN["active"] = True
        try:
            return fn(*args, **kwargs)
        finally:
            RUN["active"] = False

    return wrapper


def _instrument():
    for mod, name in ((os, "rename"), (os, "replace"), (os, "fsync"), (os, "makedirs"), (shutil, "rmtree"), (torch, "save")):
        setattr(mod, name, _counted(name, getattr(mod, name)))
    builtins.open = _open
    save = _active(manager.Checkpointer.save)

    def marked_save(self, state):
        if RUN["mode"] in ("op", "count"):
            RUN["save_starts"].append(len(RUN["ops"]))
        return save(self, state)

    manager.Checkpointer.save = marked_save
    publish = _active(manager.Checkpointer._publish)

    def counting_publish(self, it, *args):
        RUN["publishes"] += 1
        if RUN["mode"] == "publish" and RUN["publishes"] == RUN["target"]:
            _die()
        return publish(self, it, *args)

    manager.Checkpointer._publish = counting_publish


def _child(mode: str, overrides, out: str) -> None:
    os.setsid()  # our own process group: the SIGKILL takes this run and its helpers, nothing else
    name, _, target = mode.partition(":")
    RUN.update(mode=name, target=int(target or 0))
    pm = PluginManager()
    digest = WeightsDigest()
    pm.register("digest", digest)
    summary = train(load_config(None, overrides), plugin_manager=pm)
    summary["digest"], summary["ops"], summary["save_starts"] = digest.value, RUN["ops"], RUN["save_starts"]
    with _real_open(out, "w") as f:
        json.dump(summary, f)


def _check(root):
    """Every directory with a final name is complete (verifies against its manifest)."""
    if not root or not os.path.isdir(root):
        return None, []
    done = layout.complete_iterations(root)
    for it in done:
        layout.verify(layout.iter_path(root, it))
    return layout.latest_iteration(root), done


def main():
    out, modes, common = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
    reset_from = os.environ.get("PLUGTRON_VICTIM_RESET")
    # Megatron's checkpoint writer reports through a queue served by a spawned manager process,
    # started on the first save of a process. Start it here once (plugtron's, as a save would);
    # the forked runs share it (it lives in this process group, so a run's SIGKILL spares it).
    from plugtron.checkpointing import write_queue

    write_queue.start()
    _instrument()
    records = []
    for i, spec in enumerate(modes):
        mode, *extra = spec.split("+")
        overrides = common + extra
        save_root = load_config(None, overrides).checkpoint.save
        run_out = f"{out}.run{i}"
        if reset_from and mode != "never":  # each killed run starts from the same saved state
            shutil.rmtree(save_root, ignore_errors=True)
            shutil.copytree(reset_from, save_root)
        import multiprocessing

        inherited = set(multiprocessing.active_children())
        pid = os.fork()
        if pid == 0:
            try:
                _child(mode, overrides, run_out)
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            # os._exit skips multiprocessing's exit handlers: stop helpers this run started, or they
            # outlive it
            for helper in multiprocessing.active_children():
                if helper not in inherited:  # the shared manager is the parent's, not ours
                    helper.terminate()
                    helper.join()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        latest, complete = _check(save_root)
        summary = json.load(_real_open(run_out)) if os.path.exists(run_out) else None
        records.append({"mode": mode, "killed": killed, "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                        "latest": latest, "complete": complete, "summary": summary})
    with _real_open(out, "w") as f:
        json.dump(records, f)


if __name__ == "__main__":
    main()
    from plugtron.cli.entry import collect_then_freeze

    collect_then_freeze()  # as the plugtron command does: no long interpreter shutdown
