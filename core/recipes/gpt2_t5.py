"""GPT-2 small and T5 220M recipes: one table each.

Neither model has a Megatron Bridge recipe. GPT-2 small takes Bridge's common bases
(``src/megatron/bridge/recipes/common.py``: ``_pretrain_common`` as used unchanged by
``recipes/gpt/h100/vanilla_gpt.py``, and ``_sft_common`` / ``_peft_common``) at GPT-2's 1024-token
context; NeMo 2.0 has no GPT-2 recipe. T5 220M follows NeMo 2.0's ``llm.t5_220m.pretrain_recipe``
(``nemo/collections/llm/recipes/t5_220m.py``): encoder 512 / decoder 128 tokens, GBS 512, MBS 1,
1,000,000 steps, Adam lr 1e-4 -> 1e-5 with weight decay 0.01 and 1% warmup. T5 has no SFT/PEFT
recipe because plugtron trains T5 on span corruption only (``dataset: ... not supported for T5``).
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define

_TUNING = dict(seq=1024, gbs=128, mbs=1, iters=1000, warmup=50)

TABLE = {
    "gpt2_small": dict(
        provider="gpt2_small", title="GPT-2 small (124M)", nemo=None,
        bridge="common.py (_pretrain_common as in gpt/h100/vanilla_gpt.py; _sft_common, _peft_common)",
        pretrain=Spec(seq=1024), sft=Spec(**_TUNING), peft=Spec(**_TUNING),
    ),
    "t5_220m": dict(
        provider="t5_220m", title="T5 220M", nemo="t5_220m",
        bridge="NeMo 2.0 nemo/collections/llm/recipes/t5_220m.py (pretrain_recipe; Megatron Bridge has none)",
        pretrain=Spec(seq=512, gbs=512, mbs=1, iters=1000000, warmup=0, warmup_fraction=0.01, lr=1e-4, min_lr=1e-5,
                      weight_decay=0.01, decay_style="linear", eval_interval=2000, null_vocab=31999),
    ),
}

RECIPES = define(TABLE, globals())
