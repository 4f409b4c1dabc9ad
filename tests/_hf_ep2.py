"""Run by torchrun (2 processes) in test_hf_ep2.py: load each family's TP=1 import (argv[1]/<family>/mcore)
into a model with expert parallelism 2 (half of the experts on each process, tokens sent to their
experts' process by the alltoall dispatcher), and write the max |logit diff| against the reference
logits the parent saved, per family and rank, to argv[1]/ep2.json (rank 0)."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from _hf_models import VOCAB, megatron_logits, tokens


def load_at_ep2(ckpt: Path):
    """The checkpoint's bare GPTModel built at EP=2 (TP=1): the experts reshard on load."""
    from megatron.core import dist_checkpointing

    from plugtron.checkpointing.safe_pickle import safe_loads
    from plugtron.config import from_yaml
    from plugtron.providers.hf import megatron_side as ms

    path = ms.checkpoint_dir(ckpt)
    provider = from_yaml((path / "run_config.yaml").read_text(), source=str(path)).model
    p = ms.single_world_layout(provider, 1)
    p.expert_model_parallel_size, p.use_cpu_initialization = 2, True
    p.finalize()
    model = p.provide()
    with safe_loads():
        loaded = dist_checkpointing.load({"model": model.sharded_state_dict()}, str(path))
    missing, unexpected = model.load_state_dict(loaded["model"], strict=False)
    assert not [k for k in missing if not k.endswith("_extra_state")] and not unexpected, (missing, unexpected)
    return model


def main() -> None:
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    from plugtron import distributed

    work, families = Path(sys.argv[1]), sys.argv[2:]
    distributed.init_process_group()  # gloo, with the CPU shims Megatron needs here
    ps.initialize_model_parallel(expert_model_parallel_size=2)
    model_parallel_cuda_manual_seed(1234)
    diffs = {}
    for family in families:
        model = load_at_ep2(work / family / "mcore")
        experts = sum(1 for n, _ in model.named_parameters() if ".local_experts." in n and n.endswith("linear_fc1.weight"))
        got = megatron_logits(model, tokens())[..., :VOCAB]
        diff = torch.tensor([(got - torch.load(work / family / "ref.pt")).abs().max().item(), float(experts)])
        gathered = [torch.zeros(2) for _ in range(2)]
        dist.all_gather(gathered, diff)
        diffs[family] = [g.tolist() for g in gathered]  # per rank: [max |diff|, local expert tensors]
    if dist.get_rank() == 0:
        (work / "ep2.json").write_text(json.dumps(diffs))
    ps.destroy_model_parallel()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
    from plugtron.cli.entry import collect_then_freeze

    collect_then_freeze()  # as the plugtron command does: no long interpreter shutdown
