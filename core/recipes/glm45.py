"""GLM-4.5 recipes (355B-A32B, Air 106B-A12B): one table, Megatron Bridge's values.

Source: Megatron-Bridge ``src/megatron/bridge/recipes/glm/glm45.py`` at commit 04d638632 over the bases
of ``recipes/common.py`` (the same values as ``glm/h100/glm45.py`` at 0cabbd555). Experts are never
split by tensor parallelism (``expert_tensor_parallel_size`` 1).

- 355B-A32B: pretraining TP 2 x PP 8, EP 16, sequence parallel, seq 4096, GBS 2048, MBS 1, 1,000,000
  iterations, lr 1e-4 -> 1e-5, 2000 warmup, selective recompute; SFT the same layout; PEFT TP 2 x PP 4,
  EP 4. Bridge turns sequence parallelism off for fine-tuning; Megatron-Core 0.16's MoE layer refuses to
  train at TP > 1 without it, so it stays on here (as in the Qwen3-MoE recipes; note the LoRA plugin
  does not take sequence parallelism yet, so the 355B PEFT recipe is refused by it until it does).
- Air 106B-A12B: pretraining TP 1 x PP 4, EP 8; SFT the same; PEFT TP 1 x PP 2, EP 4. (Bridge also sets
  sequence parallelism for Air pretraining, which means nothing at TP 1: Megatron refuses it there.)
- Bridge splits 92 layers over 8 stages and 46 over 4 without saying how; Megatron needs a whole number
  per stage, so the first and last stages here take fewer (see ``_UNEVEN``).
- Fine-tuning: unpacked 2048-token rows (Bridge: packing is not supported for GLM-4.5), GBS 128, MBS 1,
  1000 iterations, 50 warmup, Adam beta2 0.95, eval every 50 (32 batches); SFT lr 5e-6, PEFT 1e-4 with
  Bridge's default LoRA (dim 32, alpha 32 on ``linear_qkv``, ``linear_proj``, ``linear_fc1``,
  ``linear_fc2``: plugtron adapts the dense layers' MLPs and the shared expert, never the routed
  experts).

Not carried over: Bridge's multi-token-prediction layer (``mtp_num_layers`` 1, loss scale 0.3; plugtron's
GLM provider builds none, as ``Glm4MoeForCausalLM`` has none) and its GPU-only kernels (grouped GEMM,
permute fusion, shared-expert overlap, the DeepEP flex dispatcher: the ``deepep`` plugin's business).
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define

_ETP = (("expert_tensor_parallel_size", 1),)
# 92 layers over 8 stages and 46 over 4 do not divide evenly, which Megatron refuses: the first and last
# stages (which also hold the embedding and the loss) take fewer layers: 10 + 6 x 12 + 10 and 11 + 2 x 12 + 11.
_UNEVEN = {8: 10, 4: 11}


def _stages(pp: int, layers: int):
    if layers % pp == 0:
        return ()
    return (("num_layers_in_first_pipeline_stage", _UNEVEN[pp]), ("num_layers_in_last_pipeline_stage", _UNEVEN[pp]))


def _pretrain(pp: int, layers: int, **kw) -> Spec:
    return Spec(pp=pp, seq=4096, gbs=2048, mbs=1, iters=1000000, warmup=2000, lr=1e-4, min_lr=1e-5, adam_beta2=0.95,
                eval_interval=2000, model=_ETP + (("recompute_granularity", "selective"),) + _stages(pp, layers), **kw)


def _tuning(lr: float, pp: int, layers: int, **kw) -> Spec:
    return Spec(pp=pp, seq=2048, gbs=128, mbs=1, iters=1000, warmup=50, lr=lr, adam_beta2=0.95, eval_interval=50,
                eval_iters=32, packed=False, model=_ETP + _stages(pp, layers), **kw)


_LORA = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2")  # Bridge's default_peft_config("lora")
_FILE = "glm/glm45.py at 04d638632 ({name}_{{mode}}_config)"

TABLE = {
    "glm45_355b": dict(
        provider="glm45_355b_a32b", title="GLM-4.5 355B-A32B", nemo=None, bridge=_FILE.format(name="glm45_355b"),
        pretrain=_pretrain(8, 92, tp=2, ep=16, sp=True),
        sft=_tuning(5e-6, 8, 92, tp=2, ep=16, sp=True),
        peft=_tuning(1e-4, 4, 92, tp=2, ep=4, sp=True, lora_targets=_LORA),
    ),
    "glm45_air_106b": dict(
        provider="glm45_air_106b_a12b", title="GLM-4.5-Air 106B-A12B", nemo=None,
        bridge=_FILE.format(name="glm45_air_106b"),
        pretrain=_pretrain(4, 46, ep=8),
        sft=_tuning(5e-6, 4, 46, ep=8),
        peft=_tuning(1e-4, 2, 46, ep=4, lora_targets=_LORA),
    ),
}

RECIPES = define(TABLE, globals())
