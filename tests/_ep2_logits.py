"""Run by torchrun (2 processes) in test_deepseek_v3.py: load a plugtron checkpoint at expert
parallelism 2 (each process builds half of the routed experts; the alltoall dispatcher sends tokens to
their experts' process) and write the logits of ``_hf_models.tokens()`` (rank 0: argv[2])."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from _hf_models import megatron_logits, tokens


def main() -> None:
    from megatron.core import dist_checkpointing
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

    from plugtron.platform import cpu_shims
    from plugtron.providers.hf import megatron_side as ms

    ckpt, out = Path(sys.argv[1]), Path(sys.argv[2])
    cpu_shims.apply()
    dist.init_process_group("gloo")
    ps.initialize_model_parallel(tensor_model_parallel_size=1, expert_model_parallel_size=2)
    model_parallel_cuda_manual_seed(1234)
    path = ms.checkpoint_dir(ckpt)
    provider = ms.load_provider(ckpt)
    provider.expert_model_parallel_size, provider.use_cpu_initialization = 2, True
    provider.finalize()
    model = provider.provide()
    assert len(model.decoder.layers[1].mlp.experts.local_experts) == provider.num_moe_experts // 2
    loaded = dist_checkpointing.load({"model": model.sharded_state_dict()}, str(path))
    missing, unexpected = model.load_state_dict(loaded["model"], strict=False)
    assert not [k for k in missing if not k.endswith("_extra_state")] and not unexpected, (missing, unexpected)
    logits = megatron_logits(model, tokens())
    if dist.get_rank() == 0:
        torch.save(logits, out)
    ps.destroy_model_parallel()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
