"""A training run that kills itself (SIGKILL to its whole process group, as ``kill -9`` of a job
would) at a chosen moment of checkpointing. Used by the crash tests in test_checkpointing.py.

    python _ckpt_victim.py OUT.json MODE overrides...

MODE: ``never`` | ``op:K`` (the K-th file-system operation performed while a save or publish is
running: mkdir, open for writing, torch.save, fsync, rename, replace, rmtree) | ``publish:N``
(entering the N-th publish, i.e. after an async write finished but before it is made visible) |
``count`` (run to the end and record the operation names). The run resumes from ``checkpoint.load``
if it holds a checkpoint. A run that finishes writes its summary (losses, final weight digest,
operation log) to OUT.json.
"""

import builtins
import json
import os
import shutil
import signal
import sys

import torch

from plugtron.checkpointing import manager
from plugtron.config import load_config
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

sys.path.insert(0, os.path.dirname(__file__))
from helpers import WeightsDigest  # noqa: E402

OPS = []
ACTIVE = [False]
MODE, TARGET = "never", 0


def _die():
    os.killpg(0, signal.SIGKILL)


def _counted(name, fn):
    def wrapper(*args, **kwargs):
        if ACTIVE[0] and MODE in ("op", "count"):
            OPS.append(name)
            if MODE == "op" and len(OPS) == TARGET:
                _die()
        return fn(*args, **kwargs)

    return wrapper


def _open(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+"):
        return _counted("open-write", _real_open)(file, mode, *args, **kwargs)
    return _real_open(file, mode, *args, **kwargs)


_real_open = builtins.open


def _active(fn):
    def wrapper(*args, **kwargs):
        ACTIVE[0] = True
        try:
            return fn(*args, **kwargs)
        finally:
            ACTIVE[0] = False

    return wrapper


def main():
    global MODE, TARGET
    out, mode, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
    MODE, _, target = mode.partition(":")
    TARGET = int(target or 0)
    for mod, name in ((os, "rename"), (os, "replace"), (os, "fsync"), (os, "makedirs"), (shutil, "rmtree"), (torch, "save")):
        setattr(mod, name, _counted(name, getattr(mod, name)))
    builtins.open = _open
    manager.Checkpointer.save = _active(manager.Checkpointer.save)
    publish = manager.Checkpointer._publish
    publishes = [0]

    def counting_publish(self, it):
        publishes[0] += 1
        if MODE == "publish" and publishes[0] == TARGET:
            _die()
        return _active(publish)(self, it)

    manager.Checkpointer._publish = counting_publish
    pm = PluginManager()
    digest = WeightsDigest()
    pm.register("digest", digest)
    summary = train(load_config(None, overrides), plugin_manager=pm)
    summary["digest"], summary["ops"] = digest.value, OPS
    with _real_open(out, "w") as f:
        json.dump(summary, f)


if __name__ == "__main__":
    main()
