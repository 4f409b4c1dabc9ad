"""Phi-4-mini recipes (its shape; see ``providers/phi3.py``): Megatron Bridge has no Phi recipe, so
these are Bridge's common bases (``src/megatron/bridge/recipes/common.py``: ``_pretrain_common``,
``_sft_common``, ``_peft_common``) at one process (TP=1): pretraining 4096 tokens, GBS 32, MBS 2, 300,000
iterations, 500 warmup; SFT/PEFT packed 4096-token rows, GBS 32, MBS 1, lr 5e-6 / 1e-4, LoRA dim 32 /
alpha 32. The authors' own fine-tuning settings are not encoded here (not verified against their
sources).
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define

TABLE = {
    "phi4_mini": dict(provider="phi4_mini", title="Phi-4-mini", bridge="common.py (_{mode}_common; no Phi recipe in Bridge)",
                      pretrain=Spec(), sft=Spec(mbs=1), peft=Spec(mbs=1)),
}

RECIPES = define(TABLE, globals())
