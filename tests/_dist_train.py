"""Run by torchrun in the multi-process tests: train with the given overrides and write each rank's
summary (per-step losses where that rank has them, eval history, and with PLUGTRON_TEST_DIGEST=1
the final weights' digest) to ``<argv[1]>.rank<R>``; ``helpers.torchrun`` picks one. The recipe is
``tiny`` unless PLUGTRON_TEST_RECIPE names another."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from helpers import Perturb, PidFile, SlowRank, WeightsDigest  # noqa: E402

from plugtron.config import load_config  # noqa: E402
from plugtron.plugin_manager import PluginManager  # noqa: E402
from plugtron.training import train  # noqa: E402


def main() -> None:
    out, overrides = sys.argv[1], sys.argv[2:]
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
    summary = train(load_config(None, overrides, recipe=recipe), plugin_manager=pm)
    summary["digest"] = digest.value
    with open(f"{out}.rank{os.environ.get('RANK', '0')}", "w") as f:
        json.dump(summary, f)


if __name__ == "__main__":
    main()
