"""Run by torchrun (2 processes) in test_hf_training_parity_tp2.py: train an imported checkpoint at
TP=2 with ``_hf_parity.plugtron_run`` (argv[2:] are the overrides) and, on rank 0, save the per-step
losses, grad norms and recorded micro batches to argv[1] for the parent's transformers loop."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))

from _hf_parity import plugtron_run  # noqa: E402


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    losses, norms, batches = plugtron_run(args)
    if os.environ.get("RANK", "0") == "0":
        torch.save({"losses": losses, "grad_norms": norms, "batches": batches}, out)


if __name__ == "__main__":
    main()
