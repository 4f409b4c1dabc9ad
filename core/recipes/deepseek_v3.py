"""DeepSeek-V3 (671B) recipes: one table, Megatron Bridge's values.

Source: Megatron-Bridge ``src/megatron/bridge/recipes/deepseek/deepseek_v3.py`` at commit 355cef457
(``deepseek_v3_pretrain_config``; the same values as ``h100/deepseek_v3.py``'s
``deepseek_v3_pretrain_1024gpu_h100_bf16_config`` at ce1c61ace) over the bases of ``recipes/common.py``:
TP 2 x PP 16, EP 64 with one expert-tensor rank, sequence parallelism, seq 4096, GBS 4096, MBS 1,
2000 warmup iterations, init std 0.006, selective recompute. Bridge splits the 61 layers over 16 stages
as embedding + 4 layers, 14 x 4, then 1 layer + MTP + loss; plugtron has no multi-token prediction (the
provider refuses ``mtp_num_layers``), so the same split is first stage 4 layers, last stage 1.

Bridge publishes no SFT or LoRA recipe for DeepSeek-V3: ``deepseek_v3_sft`` and ``deepseek_v3_peft`` keep
the pretraining layout (the only one Bridge gives for 671B) over Bridge's fine-tuning bases and its MoE
fine-tuning schedule (100 iterations, 10 warmup, beta2 0.95, eval every 50), packed 4096-token rows and
GBS 128 (a multiple of the 64-way data parallelism EP 64 needs; Bridge's Qwen3-MoE recipes use 32 on
smaller layouts). LoRA targets MLA's projections and the output projection (``linear_q_down_proj``,
``linear_q_up_proj``, ``linear_kv_down_proj``, ``linear_kv_up_proj``, ``linear_proj``); adapters on the
routed experts are not implemented (docs/peft.md).

Bridge also selects GPU-only kernels (grouped GEMM, permute fusion, the HybridEP flex dispatcher, TE's
fused cross entropy) and bf16 optimizer moments; plugtron leaves those to the ``deepep`` plugin and the
provider's defaults.
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define

_MODEL = (("expert_tensor_parallel_size", 1), ("init_method_std", 0.006), ("recompute_granularity", "selective"),
          ("num_layers_in_first_pipeline_stage", 4), ("num_layers_in_last_pipeline_stage", 1))
_LAYOUT = dict(tp=2, pp=16, ep=64, sp=True, seq=4096, mbs=1)


def _tuning(**kw) -> Spec:
    return Spec(**{**_LAYOUT, **dict(gbs=128, iters=100, warmup=10, decay_iters=100, adam_beta2=0.95, eval_interval=50,
                                     eval_iters=10, model=_MODEL), **kw})


_FILE = "deepseek/deepseek_v3.py at 355cef457 (deepseek_v3_pretrain_config)"

TABLE = {
    "deepseek_v3": dict(
        provider="deepseek_v3_671b", title="DeepSeek-V3", nemo=None, bridge=_FILE,
        pretrain=Spec(**_LAYOUT, gbs=4096, iters=1_000_000, warmup=2000, eval_interval=2000, model=_MODEL),
        sft=_tuning(),
        peft=_tuning(lora_dim=8, lora_alpha=16, lora_targets=("linear_q_down_proj", "linear_q_up_proj",
                                                              "linear_kv_down_proj", "linear_kv_up_proj", "linear_proj")),
    ),
}

RECIPES = define(TABLE, globals())
