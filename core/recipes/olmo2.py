"""OLMo 2 recipes (7B, 13B). Megatron Bridge has no OLMo 2 recipe; pretraining follows the model
authors' published stage-1 configs, ``allenai/OLMo`` ``configs/official-1124/OLMo2-7B-stage1.yaml``
and ``OLMo2-13B-stage1.yaml``: AdamW lr 3e-4 (betas 0.9/0.95, weight decay 0.1, clip 1.0), cosine
to 10% of the peak, sequence 4096, micro-batch 2, global batch 1024 (7B) / 2048 (13B) sequences, a
warmup of 8,388,608,000 tokens (2000 / 1000 steps) and a cosine horizon of 5e12 tokens (1,192,093 /
596,046 steps), trained for 4T (7B: 953,674 steps) and 5T tokens (13B).

Not from the authors: the parallelism (OLMo trains with FSDP; here TP 2 for 7B and TP 4 for 13B,
Bridge's layout for Llama-shaped models of those sizes), and SFT/PEFT, which use plugtron's
fine-tuning bases (Bridge's ``_sft_common``/``_peft_common``: packed 2048-token rows, GBS 128, LoRA
dim 32 / alpha 32 on every linear), as the authors' post-training recipe (Tülu 3, open-instruct) is
not a Megatron recipe.
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define


def _pretrain(gbs: int, iters: int, warmup: int, decay: int, tp: int) -> Spec:
    return Spec(tp=tp, seq=4096, gbs=gbs, mbs=2, iters=iters, warmup=warmup, decay_iters=decay, lr=3e-4,
                min_lr=3e-5, adam_beta2=0.95, weight_decay=0.1)


def _tuning(**kw) -> Spec:
    return Spec(**{**dict(seq=2048, gbs=128, mbs=1, iters=100, warmup=10, decay_iters=100, adam_beta2=0.95,
                          eval_interval=50, eval_iters=10), **kw})


_SOURCE = ("allenai/OLMo configs/official-1124/{cfg} (pretraining); fine-tuning: plugtron's bases "
           "(Megatron-Bridge src/megatron/bridge/recipes/common.py)")

TABLE = {
    "olmo2_7b": dict(provider="olmo2_7b", title="OLMo 2 7B", nemo=None, cfg="OLMo2-7B-stage1.yaml",
                     pretrain=_pretrain(1024, 953674, 2000, 1192093, tp=2), sft=_tuning(tp=2), peft=_tuning()),
    "olmo2_13b": dict(provider="olmo2_13b", title="OLMo 2 13B", nemo=None, cfg="OLMo2-13B-stage1.yaml",
                      pretrain=_pretrain(2048, 596046, 1000, 596046, tp=4), sft=_tuning(tp=4), peft=_tuning()),
}
for _row in TABLE.values():
    _row["bridge"] = _SOURCE.format(cfg=_row["cfg"])

RECIPES = define(TABLE, globals())
