"""Mixtral 8x7B recipes (top-2 of 8 experts): one table.

Source: Megatron-Bridge ``src/megatron/bridge/recipes/mixtral/mixtral.py`` as added in commit
fd27b3b38 ("Add Mixtral model support") and later moved out of the main branch: TP 2, EP 4, sequence
parallel; pretraining seq 4096, GBS 32, MBS 2, 300,000 iterations, lr 3e-4 -> 3e-5, 500 warmup;
fine-tuning 1000 iterations, lr 1e-5 -> 1e-6. Bridge has no Mixtral PEFT recipe: the PEFT variant is
the fine-tuning layout with Bridge's common LoRA base (dim 32, alpha 32, lr 1e-4). 8 processes.
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define

_LAYOUT = dict(tp=2, ep=4, sp=True, seq=4096)
_TUNING = dict(_LAYOUT, gbs=32, mbs=1, iters=1000, warmup=50, packed=True)

TABLE = {
    "mixtral_8x7b": dict(
        provider="mixtral_8x7b", title="Mixtral 8x7B", nemo="mixtral_8x7b",
        bridge="mixtral/mixtral.py at fd27b3b38 (mixtral_8x7b_pretrain_config, mixtral_8x7b_finetune_config; PEFT: common.py _peft_common)",
        pretrain=Spec(**_LAYOUT, gbs=32, mbs=2, iters=300000, warmup=500),
        sft=Spec(**_TUNING, lr=1e-5, min_lr=1e-6),
        peft=Spec(**_TUNING),
    ),
}

RECIPES = define(TABLE, globals())
