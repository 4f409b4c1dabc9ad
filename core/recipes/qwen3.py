"""Qwen3 recipes (0.6B, 1.7B, 4B, 8B, 14B, 32B): one table, Megatron Bridge's values.

Source: Megatron-Bridge ``src/megatron/bridge/recipes/qwen/h100/qwen3.py`` over the bases of
``recipes/common.py``. Pretraining: Bridge's common base (seq 4096, GBS 32, MBS 2, 300,000
iterations, 500 warmup) at TP 1/1/2/4/8 and TP 8 x PP 2 for 32B. SFT: packed 2048-token rows,
GBS 8 (Bridge's packed-sequence batch), eval every 30, at the pretraining TP/PP; PEFT (LoRA dim 32 /
alpha 32 on every linear) at TP 1. 32B recomputes every layer in full (``recompute_granularity
full``, uniform, 1 layer) in all three modes, as Bridge does.
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define

_RECOMPUTE = (("recompute_granularity", "full"), ("recompute_method", "uniform"), ("recompute_num_layers", 1))


def _tuning(**kw) -> Spec:
    return Spec(**{**dict(seq=2048, gbs=8, mbs=1, iters=100, warmup=10, decay_iters=100, adam_beta2=0.95,
                          eval_interval=30, eval_iters=10), **kw})


_FILE = "qwen/h100/qwen3.py ({name}_{{mode}}_{{gpus}}gpu_h100_bf16_config)"

TABLE = {
    "qwen3_0_6b": dict(provider="qwen3_0_6b", title="Qwen3 0.6B", nemo="qwen3_600m", bridge_name="qwen3_600m",
                       pretrain=Spec(), sft=_tuning(), peft=_tuning()),
    "qwen3_1_7b": dict(provider="qwen3_1_7b", title="Qwen3 1.7B", nemo="qwen3_1p7b", bridge_name="qwen3_1p7b",
                       pretrain=Spec(), sft=_tuning(), peft=_tuning()),
    "qwen3_4b": dict(provider="qwen3_4b", title="Qwen3 4B", nemo="qwen3_4b", bridge_name="qwen3_4b",
                     pretrain=Spec(tp=2), sft=_tuning(tp=2), peft=_tuning()),
    "qwen3_8b": dict(provider="qwen3_8b", title="Qwen3 8B", nemo="qwen3_8b", bridge_name="qwen3_8b",
                     pretrain=Spec(tp=4), sft=_tuning(tp=4), peft=_tuning()),
    "qwen3_14b": dict(provider="qwen3_14b", title="Qwen3 14B", nemo="qwen3_14b", bridge_name="qwen3_14b",
                      pretrain=Spec(tp=8), sft=_tuning(tp=8), peft=_tuning()),
    "qwen3_32b": dict(provider="qwen3_32b", title="Qwen3 32B", nemo="qwen3_32b", bridge_name="qwen3_32b",
                      pretrain=Spec(tp=8, pp=2, model=_RECOMPUTE), sft=_tuning(tp=8, pp=2, model=_RECOMPUTE),
                      peft=_tuning(model=_RECOMPUTE)),
}
for _row in TABLE.values():
    _row["bridge"] = _FILE.format(name=_row["bridge_name"])

RECIPES = define(TABLE, globals())
