"""Run by torchrun (2 processes) in test_gpt_oss.py: load a plugtron checkpoint with its experts split
over the two processes (expert parallelism 2, each rank holding half of them; the dispatcher sends
every token to its experts' rank), compute the logits of the tokens the parent saved, and write the
max |diff| to the parent's reference logits (rank 0 writes argv[1]/ep2.json)."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from _hf_models import megatron_logits


def main() -> None:
    from megatron.core import dist_checkpointing
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    from plugtron import distributed
    from plugtron.checkpointing.safe_pickle import safe_loads
    from plugtron.providers.hf import megatron_side as ms

    work, ckpt = Path(sys.argv[1]), Path(sys.argv[2])
    distributed.init_process_group()  # gloo here, with the CPU shims Megatron-Core needs without CUDA
    ps.initialize_model_parallel(tensor_model_parallel_size=1, expert_model_parallel_size=2)
    model_parallel_cuda_manual_seed(1234)
    path = ms.checkpoint_dir(ckpt)
    provider = ms.single_world_layout(ms.load_provider(ckpt), 1)
    provider.expert_model_parallel_size, provider.use_cpu_initialization = 2, True
    provider.finalize()
    model = provider.provide()
    with safe_loads():
        loaded = dist_checkpointing.load({"model": model.sharded_state_dict()}, str(path))
    missing, unexpected = model.load_state_dict(loaded["model"], strict=False)
    assert not [k for k in missing if not k.endswith("_extra_state")] and not unexpected, (missing, unexpected)
    toks, ref = torch.load(work / "tokens.pt"), torch.load(work / "ref.pt")
    got = megatron_logits(model, toks)[..., : ref.shape[-1]]
    experts = sum(1 for n, _ in model.named_parameters() if n.endswith("local_experts.0.linear_fc1.weight"))
    if dist.get_rank() == 0:
        (work / "ep2.json").write_text(json.dumps({"diff": (got - ref).abs().max().item(), "layers_with_experts": experts,
                                                   "local_experts": len(model.decoder.layers[0].mlp.experts.local_experts)}))
    ps.destroy_model_parallel()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
