"""Run by torchrun in the multi-process tests: train with the given overrides and write the
per-step losses (from a rank that has them) to the JSON path in argv[1]."""

import json
import sys

import torch.distributed as dist

from plugtron.config import load_config
from plugtron.training import train


def main() -> None:
    out, overrides = sys.argv[1], sys.argv[2:]
    summary = train(load_config(None, overrides))
    if summary["losses"]:
        with open(out, "w") as f:
            json.dump(summary, f)


if __name__ == "__main__":
    main()
