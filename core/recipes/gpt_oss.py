"""gpt-oss recipes (20B, 120B): one table, Megatron Bridge's values.

Source: Megatron-Bridge ``src/megatron/bridge/recipes/gpt_oss/gpt_oss.py`` at commit db2bfddc1
(``gpt_oss_{20b,120b}_pretrain_config`` and ``gpt_oss_{20b,120b}_finetune_config`` over
``_gpt_oss_finetune_common``). Every mode keeps one expert-tensor rank (``expert_tensor_parallel_size``
1: Bridge, "bias in MoE only supported when ETP==1").

- Pretraining: TP 2 x PP 4, sequence parallelism, EP 4 (20B) / EP 16 (120B), seq 4096, GBS 512, MBS 1,
  1,000,000 iterations, 2000 warmup, eval every 2000, per-token loss (Bridge sets it for CP > 1;
  harmless at CP 1); the bases of ``recipes/common.py`` otherwise (lr 3e-4 -> 3e-5, beta2 0.95).
- Fine-tuning (``_gpt_oss_finetune_common``): packed 2048-token rows, GBS 128, MBS 1, 1000 iterations,
  50 warmup, eval every 50 (32 batches), beta2 0.98, min lr 0. Full SFT (lr 5e-6): 20B TP 1 PP 1 EP 8;
  120B TP 1 PP 4 EP 8. LoRA (lr 1e-4): 20B TP 1 PP 1 EP 1; 120B TP 1 PP 1 EP 8.
- LoRA shape: Bridge's default (dim 32, alpha 32) on ``linear_qkv`` and ``linear_proj`` only. Bridge also
  names ``linear_fc1``/``linear_fc2``; in gpt-oss every MLP is a mixture of experts, and plugtron's
  adapters do not wrap experts (such a target is refused before the first step, naming what can be
  adapted), so those two are left out here.

Bridge also selects GPU kernels (Transformer Engine, grouped GEMM, permute fusion, the DeepEP flex
dispatcher, native cross-entropy fusion) and ``cp_comm_type: a2a`` for CP > 1 with sinks; plugtron
leaves kernels to the provider and the ``deepep`` plugin. World sizes are TP x PP x CP x the smallest
data-parallel size EP divides (Bridge's 20B pretraining on 8 GPUs puts the experts inside TP x PP).
"""

from __future__ import annotations

from plugtron.recipes.common import Spec, define

_ETP = (("expert_tensor_parallel_size", 1),)
_PRETRAIN = dict(tp=2, pp=4, sp=True, seq=4096, gbs=512, mbs=1, iters=1_000_000, warmup=2000, eval_interval=2000,
                 model=_ETP + (("calculate_per_token_loss", True),))
_LORA = dict(lora_dim=32, lora_alpha=32, lora_targets=("linear_qkv", "linear_proj"))


def _tuning(**kw) -> Spec:
    return Spec(**{**dict(tp=1, seq=2048, gbs=128, mbs=1, iters=1000, warmup=50, eval_interval=50, eval_iters=32,
                          adam_beta2=0.98, min_lr=0.0, model=_ETP), **kw})


_FILE = "gpt_oss/gpt_oss.py at db2bfddc1 ({name}_{{mode}}_config; sft/peft: {name}_finetune_config)"

TABLE = {
    "gpt_oss_20b": dict(
        provider="gpt_oss_20b", title="gpt-oss 20B", nemo=None, bridge=_FILE.format(name="gpt_oss_20b"),
        pretrain=Spec(ep=4, **_PRETRAIN),
        sft=_tuning(ep=8, lr=5e-6),
        peft=_tuning(ep=1, lr=1e-4, **_LORA),
    ),
    "gpt_oss_120b": dict(
        provider="gpt_oss_120b", title="gpt-oss 120B", nemo=None, bridge=_FILE.format(name="gpt_oss_120b"),
        pretrain=Spec(ep=16, **_PRETRAIN),
        sft=_tuning(pp=4, ep=8, lr=5e-6),
        peft=_tuning(ep=8, lr=1e-4, **_LORA),
    ),
}

RECIPES = define(TABLE, globals())
