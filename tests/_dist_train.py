"""Run by torchrun in the multi-process tests: train with the given overrides and write each rank's
summary (per-step losses where that rank has them, eval history, and with PLUGTRON_TEST_DIGEST=1
the final weights' digest) to ``<argv[1]>.rank<R>``; ``helpers.torchrun`` picks one. The recipe is
``tiny`` unless PLUGTRON_TEST_RECIPE names another, or an override list starts with ``--recipe=NAME``.

Several runs in one launch (``helpers.torchrun_runs``): override lists separated by ``--then``, run
one after another in the same two processes (torch and Megatron imported once: a launch costs
seconds, a tiny run a fraction of one); run I writes ``<argv[1]>.run<I>.rank<R>``. Each run gets a
fresh default process group on its own key prefix of torchrun's store (a second plain ``env://``
init would read the first group's stale gloo addresses and fail); plugtron uses a group that is
already up and tears it down when the run ends, as it does its own."""

import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from helpers import Perturb, PidFile, SlowRank, WeightsDigest  # noqa: E402

from plugtron.config import load_config  # noqa: E402
from plugtron.plugin_manager import PluginManager  # noqa: E402
from plugtron.training import train  # noqa: E402

THEN = "--then"


def run(overrides, out: str) -> None:
    pm = PluginManager()
    digest = WeightsDigest()
    if os.environ.get("PLUGTRON_TEST_DIGEST"):
        pm.register("digest", digest)
    if os.environ.get("PLUGTRON_TEST_PERTURB_RANK"):
        pm.register("perturb", Perturb(os.environ["PLUGTRON_TEST_PERTURB_RANK"]))
    if os.environ.get("PLUGTRON_TEST_SLOW_RANK"):  # "RANK:SECONDS"
        pm.register("slow_rank", SlowRank(os.environ["PLUGTRON_TEST_SLOW_RANK"]))
    if os.environ.get("PLUGTRON_TEST_PIDFILE"):
        pm.register("pidfile", PidFile(os.environ["PLUGTRON_TEST_PIDFILE"]))
    recipe = os.environ.get("PLUGTRON_TEST_RECIPE", "tiny")
    if overrides and overrides[0].startswith("--recipe="):
        recipe, overrides = overrides[0].split("=", 1)[1], overrides[1:]
    summary = train(load_config(None, overrides, recipe=recipe), plugin_manager=pm)
    summary["digest"] = digest.value
    with open(f"{out}.rank{os.environ.get('RANK', '0')}", "w") as f:
        json.dump(summary, f)


def split_runs(args):
    runs = [[]]
    for arg in args:
        if arg == THEN:
            runs.append([])
        else:
            runs[-1].append(arg)
    return runs


def main() -> None:
    out, runs = sys.argv[1], split_runs(sys.argv[2:])
    if len(runs) == 1:
        run(runs[0], out)
        return
    for i, overrides in enumerate(runs):
        with fresh_group(i):
            run(overrides, f"{out}.run{i}")


@contextlib.contextmanager
def fresh_group(i: int):
    """The default process group for run ``i`` of a launch (see the module docstring)."""
    import torch.distributed as dist

    store, rank, world = next(dist.rendezvous("env://"))
    dist.init_process_group("gloo", store=dist.PrefixStore(f"plugtron-test-run{i}", store), rank=rank, world_size=world)
    yield
    assert not dist.is_initialized(), "the run left its process group up"


if __name__ == "__main__":
    main()
    from plugtron.cli.entry import collect_then_freeze

    collect_then_freeze()  # as the plugtron command does: no long interpreter shutdown
