"""Run by torchrun (2 processes) in test_hf_tp2.py: import each family's HF dir into TP=2, load
the checkpoint back at TP=2 (and a TP=1 import, where the parent made one), and write each max
|logit diff| against the reference logits the parent saved (rank 0 writes argv[1]/tp2.json)."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from _hf_models import VOCAB, megatron_logits, tokens


def main() -> None:
    from plugtron.providers.hf import AutoBridge
    from plugtron.providers.hf import megatron_side as ms

    work, families = Path(sys.argv[1]), sys.argv[2:]
    dist.init_process_group("gloo")  # once: megatron_world reuses it (a second env:// init would hang)
    diffs = {}
    for family in families:
        AutoBridge.import_ckpt(str(work / family / "hf"), str(work / family / "tp2"), tensor_model_parallel_size=2)
        with ms.megatron_world(2):
            _, model = ms.load_model(work / family / "tp2", tp=2)
            got = megatron_logits(model, tokens())[..., :VOCAB]
            rank = dist.get_rank()
        ref = torch.load(work / family / "ref.pt")
        diffs[family] = (got - ref).abs().max().item()
        if (work / family / "tp1").is_dir():  # imported at TP=1 by the parent: resharded on load
            with ms.megatron_world(2):
                _, model = ms.load_model(work / family / "tp1", tp=2)
                got = megatron_logits(model, tokens())[..., :VOCAB]
            diffs[f"{family} tp1->tp2"] = (got - ref).abs().max().item()
    if rank == 0:
        (work / "tp2.json").write_text(json.dumps(diffs))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
    from plugtron.cli.entry import collect_then_freeze

    collect_then_freeze()  # as the plugtron command does: no long interpreter shutdown
