"""Run by torchrun (2 processes) in test_hf_training_parity_tp2.py: train an imported checkpoint at
TP=2 with ``_hf_parity.plugtron_run`` (argv[2:] are the overrides) and, on rank 0, save the per-step
losses, grad norms and recorded micro batches to argv[1] for the parent's transformers loop.
Override lists separated by ``--then``: several runs in one launch, run I saved to ``argv[1].run<I>``."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))

from _dist_train import fresh_group, split_runs  # noqa: E402
from _hf_parity import plugtron_run  # noqa: E402


def one(args, out) -> None:
    losses, norms, batches = plugtron_run(args)
    if os.environ.get("RANK", "0") == "0":
        torch.save({"losses": losses, "grad_norms": norms, "batches": batches}, out)


def main() -> None:
    out, runs = sys.argv[1], split_runs(sys.argv[2:])
    if len(runs) == 1:
        one(runs[0], out)
        return
    for i, args in enumerate(runs):  # several runs in one launch, as in _dist_train.py: run I saves <out>.run<I>
        with fresh_group(i):
            one(args, f"{out}.run{i}")


if __name__ == "__main__":
    main()
    from plugtron.cli.entry import collect_then_freeze

    collect_then_freeze()  # as the plugtron command does: no long interpreter shutdown
