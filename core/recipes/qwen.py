"""Qwen2.5 recipes (0.5B, 7B, 72B): one table, Megatron Bridge's values.

Source: Megatron-Bridge ``src/megatron/bridge/recipes/qwen/h100/qwen2.py`` over the bases of
``recipes/common.py``. Pretraining keeps Bridge's common base (seq 4096, GBS 32, MBS 2, 300,000
iterations, 500 warmup). SFT and PEFT: packed 2048-token rows, GBS 128, MBS 1, 100 iterations, 10
warmup, Adam beta2 0.95, eval every 50 (10 batches); PEFT is LoRA dim 32 / alpha 32 on every linear.
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define


def _tuning(**kw) -> Spec:
    return Spec(**{**dict(seq=2048, gbs=128, mbs=1, iters=100, warmup=10, decay_iters=100, adam_beta2=0.95,
                          eval_interval=50, eval_iters=10), **kw})


_FILE = "qwen/h100/qwen2.py ({name}_{{mode}}_{{gpus}}gpu_h100_bf16_config)"

TABLE = {
    "qwen25_0_5b": dict(provider="qwen25_0_5b", title="Qwen2.5 0.5B", nemo="qwen25_500m", bridge_name="qwen25_500m",
                        pretrain=Spec(), sft=_tuning(), peft=_tuning()),
    "qwen25_7b": dict(provider="qwen25_7b", title="Qwen2.5 7B", nemo="qwen25_7b", bridge_name="qwen25_7b",
                      pretrain=Spec(tp=2), sft=_tuning(tp=2), peft=_tuning()),
    "qwen25_72b": dict(provider="qwen25_72b", title="Qwen2.5 72B", nemo="qwen25_72b", bridge_name="qwen25_72b",
                       pretrain=Spec(tp=8, pp=4), sft=_tuning(tp=8, pp=4), peft=_tuning(tp=8)),
}
for _row in TABLE.values():
    _row["bridge"] = _FILE.format(name=_row["bridge_name"])

RECIPES = define(TABLE, globals())
