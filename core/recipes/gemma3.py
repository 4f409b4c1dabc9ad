"""Gemma 3 (text) recipes: 1B, 4B, 12B, 27B; Megatron Bridge's values.

Sources (Megatron-Bridge ``src/megatron/bridge/recipes/``):

- 1B, all modes: ``gemma/h100/gemma3.py`` (``gemma3_1b_{pretrain,sft,peft}_1gpu_h100_bf16_config``).
  Pretraining: 32k tokens, GBS 512, MBS 1, 1,168,251 iterations, 2000 warmup, eval every 2000. SFT:
  packed 4096-token rows, GBS 32, MBS 1, 100 iterations (10 warmup, decay over 100), lr 5e-6, Adam
  beta2 0.95, eval every 50 (10 batches). PEFT: as SFT with lr 1e-4 and LoRA dim 8 / alpha 16.
- 4B, 12B, 27B: Bridge's text recipes cover 1B only; its Gemma 3 recipes for these sizes are the
  vision-language ones, ``gemma3_vl/gemma3_vl.py`` (``gemma3_vl_{4b,12b,27b}_{sft,peft}_config``), whose
  language model is this text stack: SFT/PEFT take their layout and schedule (SFT TP 1/4/8, 27B with
  PP 2; PEFT TP 1/1/4; 4096 tokens, GBS 32, MBS 1, 50 iterations, 10 warmup, decay over 50, eval
  every 5 (10 batches); lr 5e-5 -> 5e-6 full, 2e-4 -> 2e-5 LoRA, LoRA dim 32 / alpha 32). Pretraining
  (no Bridge recipe at these sizes) is the 1B pretraining schedule at the size's SFT layout.

Gemma 3 is built from Megatron's local layers in plugtron (``providers/gemma3.py``), not Bridge's
Transformer Engine spec.
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define

_PRETRAIN = dict(seq=32768, gbs=512, mbs=1, iters=1168251, warmup=2000, eval_interval=2000)
_TEXT = dict(seq=4096, gbs=32, mbs=1, iters=100, warmup=10, decay_iters=100, adam_beta2=0.95, eval_interval=50,
             eval_iters=10)
_VL = dict(seq=4096, gbs=32, mbs=1, iters=50, warmup=10, decay_iters=50, eval_interval=5, eval_iters=10)
_TEXT_FILE = "gemma/h100/gemma3.py (gemma3_1b_{mode}_1gpu_h100_bf16_config)"
_VL_FILE = ("gemma3_vl/gemma3_vl.py (gemma3_vl_{size}_{{mode}}_config; pretraining: gemma/h100/gemma3.py's "
            "1B schedule at this layout)")


def _vl(sft_tp: int, peft_tp: int, sft_pp: int = 1) -> dict:
    return dict(pretrain=Spec(**_PRETRAIN, tp=sft_tp, pp=sft_pp),
                sft=Spec(**_VL, tp=sft_tp, pp=sft_pp, lr=5e-5, min_lr=5e-6),
                peft=Spec(**_VL, tp=peft_tp, lr=2e-4, min_lr=2e-5))


TABLE = {
    "gemma3_1b": dict(provider="gemma3_1b", title="Gemma 3 1B", nemo="gemma3_1b", bridge=_TEXT_FILE,
                      pretrain=Spec(**_PRETRAIN), sft=Spec(**_TEXT), peft=Spec(**_TEXT, lr=1e-4, lora_dim=8, lora_alpha=16)),
    "gemma3_4b": dict(provider="gemma3_4b", title="Gemma 3 4B", bridge=_VL_FILE.format(size="4b"), **_vl(1, 1)),
    "gemma3_12b": dict(provider="gemma3_12b", title="Gemma 3 12B", bridge=_VL_FILE.format(size="12b"), **_vl(4, 1)),
    "gemma3_27b": dict(provider="gemma3_27b", title="Gemma 3 27B", bridge=_VL_FILE.format(size="27b"), **_vl(8, 4, 2)),
}

RECIPES = define(TABLE, globals())
