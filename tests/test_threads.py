"""An in-process run leaves no threads behind: Megatron's process groups (3 gloo threads each, ~16
groups) end with the run, so tests and notebooks that train many times do not pile them up."""

import os
import sys
from collections import Counter

import pytest

from helpers import SMALL

TASKS = f"/proc/{os.getpid()}/task"


def _threads() -> Counter:
    names = Counter()
    for tid in os.listdir(TASKS):
        try:
            with open(f"{TASKS}/{tid}/comm") as f:
                names[f.read().strip()] += 1
        except FileNotFoundError:  # the thread ended while listing
            pass
    return names


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts native threads through /proc (Linux only)")
def test_runs_leave_no_process_group_threads():
    from plugtron.config import load_config
    from plugtron.training import train

    def run():
        train(load_config(None, SMALL + ["train.train_iters=2", "train.eval_interval=null"]))
        return _threads()

    def gloo(names):
        return sum(n for name, n in names.items() if "gloo" in name)

    before = _threads()  # other tests in this process may have left groups of their own
    first = run()  # the first run may start pools that live for the process (OpenMP, Megatron's helpers)
    second = run()
    assert gloo(first) <= gloo(before) and gloo(second) <= gloo(before), (before, first, second)
    assert sum(second.values()) <= sum(first.values()), (first, second)
