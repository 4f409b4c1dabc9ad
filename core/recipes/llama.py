"""Llama 3, 3.1 and 3.2 recipes: one table, Megatron Bridge's values.

Source: Megatron-Bridge ``src/megatron/bridge/recipes/llama/h100/llama3.py`` (the functions
``llama3_8b_pretrain_config`` etc. of ``recipes/llama/llama3.py`` are aliases of those), over the
bases of ``recipes/common.py``. Pretraining: GBS 512, MBS 1, 1,168,251 iterations, 2000 warmup, eval
every 2000. SFT: packed 4096-token rows, GBS 8, 1000 iterations, lr 5e-6. PEFT (LoRA): as SFT with
lr 1e-4, no distributed optimizer, the LoRA shape per size. Each function is listed by
``plugtron recipes list``; ``plugtron recipes show NAME`` prints its resolved config.
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define


def _pretrain(**kw) -> Spec:
    return Spec(**{**dict(seq=8192, gbs=512, mbs=1, iters=1168251, warmup=2000, eval_interval=2000), **kw})


def _sft(**kw) -> Spec:
    return Spec(**{**dict(seq=4096, gbs=8, mbs=1, iters=1000, warmup=50, eval_interval=30, eval_iters=32), **kw})


_405B = (("account_for_embedding_in_pipeline_split", True), ("account_for_loss_in_pipeline_split", True))
_FILE = "llama/h100/llama3.py ({name}_{{mode}}_{{gpus}}gpu_h100_bf16_config)"

TABLE = {
    "llama32_1b": dict(provider="llama32_1b", title="Llama 3.2 1B", nemo="llama32_1b",
                       pretrain=_pretrain(), sft=_sft(), peft=_sft()),
    "llama32_3b": dict(provider="llama32_3b", title="Llama 3.2 3B", nemo="llama32_3b",
                       pretrain=_pretrain(), sft=_sft(), peft=_sft()),
    "llama3_8b": dict(provider="llama3_8b", title="Llama 3 8B", nemo="llama3_8b",
                      pretrain=_pretrain(cp=2), sft=_sft(tp=2), peft=_sft(lora_dim=8, lora_alpha=16)),
    "llama3_70b": dict(provider="llama3_70b", title="Llama 3 70B", nemo="llama3_70b",
                       pretrain=_pretrain(tp=4, pp=4, vpp=5, cp=2, sp=True), sft=_sft(tp=8, pp=4),
                       peft=_sft(tp=8, lora_dim=16, lora_alpha=32)),
    "llama31_8b": dict(provider="llama31_8b", title="Llama 3.1 8B", nemo="llama31_8b",
                       pretrain=_pretrain(cp=2), sft=_sft(tp=2), peft=_sft(lora_dim=8, lora_alpha=16)),
    "llama31_70b": dict(provider="llama31_70b", title="Llama 3.1 70B", nemo="llama31_70b",
                        pretrain=_pretrain(tp=4, pp=4, vpp=5, cp=2, sp=True, seq=131072), sft=_sft(tp=8, pp=4),
                        peft=_sft(tp=8, lora_dim=16, lora_alpha=32)),
    "llama31_405b": dict(provider="llama31_405b", title="Llama 3.1 405B", nemo="llama31_405b",
                         pretrain=_pretrain(tp=8, pp=8, vpp=2, cp=4, sp=True, seq=131072, model=_405B),
                         sft=_sft(tp=8, pp=16, sp=True, seq=2048, gbs=16, model=_405B, grad_reduce_in_fp32=False),
                         peft=_sft(tp=4, pp=8, vpp=8, sp=True, seq=2048, gbs=32, model=_405B, grad_reduce_in_fp32=False,
                                   lora_dim=16, lora_alpha=32, lora_targets=("linear_qkv",))),
}
for _name, _row in TABLE.items():
    _row["bridge"] = _FILE.format(name=_name)

RECIPES = define(TABLE, globals())
