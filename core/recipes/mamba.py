"""Mamba-2 and Nemotron-H recipes: one table, Megatron Bridge's values.

Sources (Megatron-Bridge ``src/megatron/bridge/``):

- Mamba-2 130M, 370M, 780M, 1.3B, 2.7B, 8B and Hybrid 8B: ``recipes/mamba/mamba2.py`` at abdddc32b
  (``mamba2_*_pretrain_config`` over ``_mamba2_common``). Pretraining only (Bridge has no Mamba-2 SFT or
  LoRA recipe): TP 1 (TP 8 for the 8B models), seq 4096, GBS 8, MBS 1, 1,168,251 iterations, 2000
  warmup, lr 3e-4 -> 3e-5, Adam beta2 0.95, weight decay 0.1, eval every 100 (32 batches). Bridge's
  providers say seq 2048 while its dataset uses 4096; plugtron's model follows the recipe's 4096.
- Nemotron-H 4B and 8B: ``recipes/nemotronh/nemotronh.py`` at 0350b4ef4 (``nemotronh_{4b,8b}_*_config``).
  Pretraining: 4B at TP 1, 8B at TP 2 with sequence parallelism; seq 8192, GBS 768, MBS 1, 1,168,251
  iterations, 2000 warmup, eval every 10 (Bridge's value). SFT at the same layout and LoRA at TP 1:
  seq 8192, GBS 128, MBS 1, 1000 iterations, 50 warmup, Adam beta2 0.95, eval every 50 (10 batches),
  min lr 1e-6 (SFT) / 1e-5 (LoRA); LoRA dim 32 / alpha 32.

Differences, on purpose:

- SFT/LoRA rows are not packed. Bridge packs 8192-token rows, which needs Transformer Engine and the
  ``mamba_ssm`` kernels to keep a row's examples apart inside the Mamba layers; plugtron refuses packed
  rows without them (``providers/model_kind.py``). On such a machine set
  ``dataset.packed_sequence_specs.packed_sequence_size=8192``.
- LoRA adapts the attention and MLP layers (``linear_qkv``, ``linear_proj``, ``linear_fc1``,
  ``linear_fc2``); Bridge also lists the Mamba mixers' ``in_proj``/``out_proj``, which plugtron's LoRA
  does not adapt yet (``peft.target_modules`` refuses those names before the first step). The
  adapters on a hybrid's attention and MLP layers train as on a GPT model (``tests/test_mamba_recipes.py``).
- Bridge's GPU-only kernel choices (TE, fused cross entropy, tp-comm overlap, FP8 first/last layers)
  are left to the providers' defaults and the ``comm_overlap`` plugin.
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define


def _mamba2(**kw) -> Spec:
    return Spec(**{**dict(seq=4096, gbs=8, mbs=1, iters=1168251, warmup=2000, lr=3e-4, min_lr=3e-5,
                          adam_beta2=0.95, eval_interval=100, eval_iters=32), **kw})


def _nemotronh_pretrain(**kw) -> Spec:
    return Spec(**{**dict(seq=8192, gbs=768, mbs=1, iters=1168251, warmup=2000, eval_interval=10), **kw})


def _nemotronh_tuning(min_lr: float, **kw) -> Spec:
    return Spec(**{**dict(seq=8192, gbs=128, mbs=1, iters=1000, warmup=50, min_lr=min_lr, adam_beta2=0.95,
                          eval_interval=50, eval_iters=10, packed=False), **kw})


_NULL_VOCAB = 131072  # Bridge's DEFAULT_NULL_TOKENIZER_VOCAB_SIZE, for the 8B research models
_MAMBA2 = "mamba/mamba2.py at abdddc32b ({name}_pretrain_config)"
_NEMOTRONH = "nemotronh/nemotronh.py at 0350b4ef4 ({name}_{{mode}}_config)"


def _mamba2_row(provider: str, title: str, bridge_name: str, **kw) -> dict:
    # NeMo 2.0's recipe modules are named like the providers (llm.mamba2_1_3b).
    return dict(provider=provider, title=title, nemo=provider, bridge=_MAMBA2.format(name=bridge_name),
                pretrain=_mamba2(**kw))


TABLE = {
    "mamba2_130m": _mamba2_row("mamba2_130m", "Mamba-2 130M", "mamba2_130m"),
    "mamba2_370m": _mamba2_row("mamba2_370m", "Mamba-2 370M", "mamba2_370m"),
    "mamba2_780m": _mamba2_row("mamba2_780m", "Mamba-2 780M", "mamba2_780m"),
    "mamba2_1p3b": _mamba2_row("mamba2_1_3b", "Mamba-2 1.3B", "mamba2_1p3b"),
    "mamba2_2p7b": _mamba2_row("mamba2_2_7b", "Mamba-2 2.7B", "mamba2_2p7b"),
    "mamba2_8b": _mamba2_row("mamba2_8b", "Mamba-2 8B", "mamba2_8b", tp=8, null_vocab=_NULL_VOCAB),
    "mamba2_hybrid_8b": _mamba2_row("mamba2_hybrid_8b", "Mamba-2-Hybrid 8B", "mamba2_hybrid_8b", tp=8,
                                    null_vocab=_NULL_VOCAB),
    "nemotronh_4b": dict(provider="nemotronh_4b", title="Nemotron-H 4B", nemo="nemotronh_4b",
                         bridge=_NEMOTRONH.format(name="nemotronh_4b"), pretrain=_nemotronh_pretrain(),
                         sft=_nemotronh_tuning(1e-6), peft=_nemotronh_tuning(1e-5)),
    "nemotronh_8b": dict(provider="nemotronh_8b", title="Nemotron-H 8B", nemo="nemotronh_8b",
                         bridge=_NEMOTRONH.format(name="nemotronh_8b"), pretrain=_nemotronh_pretrain(tp=2, sp=True),
                         sft=_nemotronh_tuning(1e-6, tp=2, sp=True), peft=_nemotronh_tuning(1e-5)),
}

RECIPES = define(TABLE, globals())
