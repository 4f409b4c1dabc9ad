"""Qwen3-MoE recipes (30B-A3B, 235B-A22B): one table, Megatron Bridge's values.

Source: Megatron-Bridge ``src/megatron/bridge/recipes/qwen/h100/qwen3_moe.py`` at commit 0cabbd555
over the bases of ``recipes/common.py``. Every mode uses TP 4, expert parallelism with one expert-tensor
rank (``expert_tensor_parallel_size`` 1) and sequence parallelism.

- 30B-A3B: pretraining TP 4 x PP 2, EP 4, seq 4096, full recompute (uniform, 1 layer); SFT the same
  layout without recompute; PEFT TP 4, EP 4, PP 1.
- 235B-A22B: pretraining TP 4 x PP 16 x CP 2, EP 8; SFT TP 4 x PP 16, EP 4; PEFT TP 4 x PP 4, EP 4; the
  embedding and the loss count as pipeline layers (94 + 2 = 96 layers over the stages).
- Fine-tuning: packed 2048-token rows, GBS 32, 100 iterations (10 warmup, decay over 100), Adam beta2
  0.95, eval every 50 (10 batches). LoRA dim 8 / alpha 16 on ``linear_qkv`` and ``linear_proj`` only.

Bridge also selects GPU-only kernels (grouped GEMM, permute fusion, the DeepEP flex dispatcher where
installed); plugtron leaves those to the ``deepep`` plugin and the provider's defaults. Bridge's GPU
counts (8 for 30B pretraining) place the experts inside the tensor-parallel group; plugtron's world size
is TP x PP x CP x the smallest data-parallel size that EP divides, so these lay out for more processes.
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define

_ETP = (("expert_tensor_parallel_size", 1),)
_RECOMPUTE = _ETP + (("recompute_granularity", "full"), ("recompute_method", "uniform"), ("recompute_num_layers", 1))
_PIPELINE_SPLIT = _ETP + (("account_for_embedding_in_pipeline_split", True), ("account_for_loss_in_pipeline_split", True))


def _tuning(**kw) -> Spec:
    return Spec(**{**dict(tp=4, sp=True, seq=2048, gbs=32, mbs=1, iters=100, warmup=10, decay_iters=100,
                          adam_beta2=0.95, eval_interval=50, eval_iters=10), **kw})


_LORA = dict(lora_dim=8, lora_alpha=16, lora_targets=("linear_qkv", "linear_proj"))
_FILE = "qwen/h100/qwen3_moe.py at 0cabbd555 ({name}_{{mode}}_*gpu_h100_bf16_config)"

TABLE = {
    "qwen3_30b_a3b": dict(
        provider="qwen3_30b_a3b", title="Qwen3-30B-A3B", nemo=None, bridge=_FILE.format(name="qwen3_30b_a3b"),
        pretrain=Spec(tp=4, pp=2, ep=4, sp=True, model=_RECOMPUTE),
        sft=_tuning(pp=2, ep=4, model=_ETP),
        peft=_tuning(ep=4, model=_ETP, **_LORA),
    ),
    "qwen3_235b_a22b": dict(
        provider="qwen3_235b_a22b", title="Qwen3-235B-A22B", nemo=None, bridge=_FILE.format(name="qwen3_235b_a22b"),
        pretrain=Spec(tp=4, pp=16, cp=2, ep=8, sp=True, mbs=1, model=_PIPELINE_SPLIT),
        sft=_tuning(pp=16, ep=4, model=_PIPELINE_SPLIT),
        peft=_tuning(pp=4, ep=4, model=_PIPELINE_SPLIT, **_LORA),
    ),
}

RECIPES = define(TABLE, globals())
