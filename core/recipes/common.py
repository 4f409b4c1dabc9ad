"""What every published-size recipe shares: Megatron Bridge's ``_pretrain_common``, ``_sft_common``
and ``_peft_common`` (``src/megatron/bridge/recipes/common.py``) as plugtron sections, and one
builder that turns a row of a family's table into a ``ConfigContainer``.

A row (``Spec``) holds only what a Bridge recipe changes from those bases: parallelism, sequence
length, batch sizes, length of training, learning rate, LoRA shape. Torch-free at import (the
registry reads the rows to list recipes); ``build`` imports Megatron-Core.

Differences from Bridge, on purpose: no output directories are set (Bridge writes to
``./nemo_experiments``; plugtron saves where ``checkpoint.save`` says), and pretraining uses Megatron's
mock data with a ``NullTokenizer`` exactly as Bridge does, so a recipe validates and runs before the
user points ``dataset.blend`` and ``tokenizer`` at real data.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import attrs

BRIDGE = "Megatron-Bridge src/megatron/bridge/recipes/"
MODES = ("pretrain", "sft", "peft")


@attrs.frozen
class Spec:
    """One recipe's settings (Bridge's values for that model and mode)."""

    tp: int = 1
    pp: int = 1
    vpp: Optional[int] = None
    cp: int = 1
    ep: int = 1
    sp: bool = False
    seq: int = 4096
    gbs: int = 32
    mbs: int = 2
    iters: int = 300000
    warmup: int = 500
    decay_iters: Optional[int] = None
    lr: Optional[float] = None  # None: the mode's base (3e-4 pretrain, 5e-6 SFT, 1e-4 PEFT)
    min_lr: Optional[float] = None
    adam_beta2: Optional[float] = None
    eval_interval: Optional[int] = None
    eval_iters: Optional[int] = None
    packed: bool = True  # SFT/PEFT: offline packing of the examples into seq-long rows
    lora_dim: int = 32
    lora_alpha: int = 32
    lora_targets: Tuple[str, ...] = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2")
    model: Tuple[Tuple[str, Any], ...] = ()  # extra model fields, e.g. account_for_loss_in_pipeline_split
    grad_reduce_in_fp32: bool = True
    decay_style: str = "cosine"
    weight_decay: float = 0.1
    warmup_fraction: Optional[float] = None  # instead of ``warmup`` iterations (NeMo's warmup_ratio)
    null_vocab: Optional[int] = None  # pretraining NullTokenizer size when the provider has no vocab_size

    def world_size(self) -> int:
        """The processes the recipe is laid out for (Bridge's GPU count): TP x PP x CP x the
        smallest data-parallel size the expert parallelism fits in."""
        dp = 1
        while (dp * self.cp) % self.ep:
            dp += 1
        return self.tp * self.pp * self.cp * dp


def distributed_fused_adam_with_cosine_annealing(
    max_lr: float = 3e-4,
    min_lr: float = 3e-5,
    lr_warmup_iters: int = 2000,
    lr_decay_iters: Optional[int] = None,
    weight_decay: float = 0.1,
    adam_beta1: float = 0.9,
    adam_beta2: float = 0.95,
    clip_grad: float = 1.0,
):
    """NeMo's and Bridge's recipe helper of the same name: distributed Adam + cosine schedule, as
    ``(OptimizerConfig, SchedulerConfig)``."""
    from megatron.core.optimizer import OptimizerConfig

    from plugtron.config.training import SchedulerConfig

    optimizer = OptimizerConfig(
        optimizer="adam", lr=max_lr, min_lr=min_lr, weight_decay=weight_decay, adam_beta1=adam_beta1,
        adam_beta2=adam_beta2, clip_grad=clip_grad, use_distributed_optimizer=True,
    )
    scheduler = SchedulerConfig(lr_decay_style="cosine", lr_warmup_iters=lr_warmup_iters, lr_decay_iters=lr_decay_iters)
    return optimizer, scheduler


# Bridge's bases per mode: learning rate, min lr, beta2, eval cadence, log interval, seed.
_BASE: Dict[str, Dict[str, Any]] = {
    "pretrain": dict(lr=3e-4, min_lr=3e-5, adam_beta2=0.95, eval_interval=500, eval_iters=32, log_interval=10, seed=1234),
    "sft": dict(lr=5e-6, min_lr=0.0, adam_beta2=0.98, eval_interval=100, eval_iters=32, log_interval=1, seed=5678),
    "peft": dict(lr=1e-4, min_lr=0.0, adam_beta2=0.98, eval_interval=100, eval_iters=32, log_interval=1, seed=5678),
}


def _pick(spec_value, base_value):
    return base_value if spec_value is None else spec_value


def plain(mode: str, spec: Spec) -> Dict[str, Any]:
    """The torch-free sections of a recipe (train, scheduler, dataset, tokenizer, logger, rng, peft,
    checkpoint) as plugtron's attrs objects, without Megatron: ``build`` uses them, and ``plugins list``
    checks plugins against them. A pretraining ``NullTokenizer`` without ``spec.null_vocab`` gets its
    size from the model in ``build``."""
    # From the submodules, not the package: ``plugtron.config`` imports the loader, which imports recipes.
    from plugtron.config.data import FinetuningDatasetConfig, GPTDatasetConfig, PackedSequenceSpecs, TokenizerConfig
    from plugtron.config.extras import LoraConfig
    from plugtron.config.training import CheckpointConfig, LoggerConfig, RNGConfig, SchedulerConfig, TrainingConfig

    base = _BASE[mode]
    scheduler = SchedulerConfig(lr_decay_style=spec.decay_style, lr_warmup_iters=spec.warmup, lr_decay_iters=spec.decay_iters)
    if spec.warmup_fraction is not None:
        scheduler.lr_warmup_iters, scheduler.lr_warmup_fraction = 0, spec.warmup_fraction
    if mode == "pretrain":
        # Mock data and a NullTokenizer covering the model's vocabulary (+ EOD), as Bridge's recipes.
        dataset = GPTDatasetConfig(mock=True, split="9999,8,2")
        tokenizer = TokenizerConfig(tokenizer_type="NullTokenizer", vocab_size=spec.null_vocab)
    else:
        packing = PackedSequenceSpecs(packed_sequence_size=spec.seq) if spec.packed else None
        dataset = FinetuningDatasetConfig(packed_sequence_specs=packing)  # dataset_root: the user's data
        tokenizer = TokenizerConfig(tokenizer_type="HuggingFaceTokenizer")  # tokenizer_model: the HF directory
    train = TrainingConfig(
        micro_batch_size=spec.mbs, global_batch_size=spec.gbs, train_iters=spec.iters,
        eval_interval=_pick(spec.eval_interval, base["eval_interval"]), eval_iters=_pick(spec.eval_iters, base["eval_iters"]),
        manual_gc=mode == "pretrain", manual_gc_interval=100 if mode == "pretrain" else 0,
    )
    peft = LoraConfig(target_modules=list(spec.lora_targets), dim=spec.lora_dim, alpha=spec.lora_alpha) if mode == "peft" else None
    return dict(train=train, scheduler=scheduler, dataset=dataset, tokenizer=tokenizer, checkpoint=CheckpointConfig(),
                logger=LoggerConfig(log_interval=base["log_interval"]), rng=RNGConfig(seed=base["seed"]), peft=peft)


def build(provider: str, mode: str, spec: Spec):
    """A complete ``ConfigContainer`` for ``provider`` (a ``model.provider`` name) in ``mode``."""
    from megatron.core.distributed import DistributedDataParallelConfig

    from plugtron.config.container import ConfigContainer
    from plugtron.config.data import FinetuningDatasetConfig, GPTDatasetConfig, PackedSequenceSpecs, TokenizerConfig
    from plugtron.config.extras import LoraConfig
    from plugtron.config.training import CheckpointConfig, LoggerConfig, RNGConfig, TrainingConfig
    from plugtron.providers.registry import provider_class

    base = _BASE[mode]
    model = provider_class(provider)(
        tensor_model_parallel_size=spec.tp, pipeline_model_parallel_size=spec.pp,
        virtual_pipeline_model_parallel_size=spec.vpp, context_parallel_size=spec.cp,
        expert_model_parallel_size=spec.ep, sequence_parallel=spec.sp, seq_length=spec.seq,
        **dict(spec.model),
    )
    optimizer, _ = distributed_fused_adam_with_cosine_annealing(
        max_lr=_pick(spec.lr, base["lr"]), min_lr=_pick(spec.min_lr, base["min_lr"]), lr_warmup_iters=spec.warmup,
        lr_decay_iters=spec.decay_iters, adam_beta2=_pick(spec.adam_beta2, base["adam_beta2"]),
        weight_decay=spec.weight_decay,
    )
    sections = plain(mode, spec)
    ddp = DistributedDataParallelConfig(check_for_nan_in_grad=True)  # grad_reduce_in_fp32: from mixed_precision
    if mode == "pretrain":
        if spec.null_vocab is None:
            sections["tokenizer"].vocab_size = model.vocab_size - 1
        ddp.overlap_grad_reduce = ddp.overlap_param_gather = ddp.average_in_collective = True
    if mode == "peft":
        optimizer.use_distributed_optimizer = False  # Bridge: only the adapters train
    precision: Any = "bf16_mixed"
    if not spec.grad_reduce_in_fp32:  # Bridge's 405B fine-tuning: bf16 gradient reduction
        from plugtron.config.precision import MixedPrecisionConfig
        from plugtron.config.converter import structure
        from plugtron.config.precision import PRESETS

        precision = structure({**PRESETS["bf16_mixed"], "grad_reduce_in_fp32": False}, MixedPrecisionConfig)
    return ConfigContainer(model=model, optimizer=optimizer, ddp=ddp, mixed_precision=precision, **sections)


def plain_from_table(table: Dict[str, Dict[str, Any]], name: str) -> Dict[str, Any]:
    """``plain`` for recipe ``name`` of a family table (``{}`` if the table has no such recipe)."""
    for recipe, _model, mode, spec, _row in expand(table):
        if recipe == name:
            return plain(mode, spec)
    return {}


def docstring(title: str, mode: str, spec: Spec, bridge: str, nemo: Optional[str]) -> str:
    """The docstring of a generated recipe function: what it is, where its values come from."""
    par = f"TP={spec.tp} PP={spec.pp}" + (f" VPP={spec.vpp}" if spec.vpp else "") + f" CP={spec.cp}" + \
          (f" EP={spec.ep}" if spec.ep > 1 else "") + (" SP" if spec.sp else "")
    what = {"pretrain": "pretraining (mock data until dataset.blend is set)",
            "sft": "full supervised fine-tuning (set dataset.dataset_root and checkpoint.pretrained_checkpoint)",
            "peft": "LoRA fine-tuning (set dataset.dataset_root and checkpoint.pretrained_checkpoint)"}[mode]
    lines = [f"{title} {what}: {par}, seq {spec.seq}, GBS {spec.gbs}, MBS {spec.mbs}, "
             f"{spec.iters} iterations; {spec.world_size()} processes.", "",
             f"Values from {bridge if bridge.startswith(('NeMo', 'allenai/')) else BRIDGE + bridge}."]
    lines.append(f"Replaces NeMo 2.0 ``{nemo}``." if nemo else "NeMo 2.0 has no recipe for this model.")
    return "\n".join(lines)


def summary(title: str, mode: str, spec: Spec) -> str:
    """One line for ``plugtron recipes list``."""
    par = f"TP{spec.tp} PP{spec.pp}" + (f" VPP{spec.vpp}" if spec.vpp else "") + (f" CP{spec.cp}" if spec.cp > 1 else "") + \
          (f" EP{spec.ep}" if spec.ep > 1 else "")
    return f"{title} {mode}: {par}, seq {spec.seq}, GBS {spec.gbs}"


def expand(family: Dict[str, Dict[str, Any]]) -> List[Tuple[str, str, str, Spec, Dict[str, Any]]]:
    """``(name, model, mode, spec, row)`` for every model and mode of a family table."""
    out = []
    for model, row in family.items():
        for mode in MODES:
            if mode in row:
                out.append((f"{model}_{mode}", model, mode, row[mode], row))
    return out


def nemo_name(module: Optional[str], mode: str) -> Optional[str]:
    """The NeMo 2.0 recipe a plugtron recipe replaces (``llm.llama3_8b.pretrain_recipe``)."""
    if module is None:
        return None
    return {"pretrain": f"llm.{module}.pretrain_recipe()", "sft": f"llm.{module}.finetune_recipe(peft_scheme=None)",
            "peft": f"llm.{module}.finetune_recipe(peft_scheme='lora')"}[mode]


def define(table: Dict[str, Dict[str, Any]], namespace: Dict[str, Any]) -> Dict[str, Tuple[str, str]]:
    """Put one plain function per model and mode of ``table`` into ``namespace`` (a module's
    globals), named as Bridge names them (``llama3_8b_pretrain_config``), each with a docstring
    citing its source; returns ``{recipe name: (function name, summary)}``."""
    out = {}
    for name, _model, mode, spec, row in expand(table):
        def recipe(_p=row["provider"], _m=mode, _s=spec):
            return build(_p, _m, _s)

        fn_name = f"{name}_config"
        recipe.__name__ = recipe.__qualname__ = fn_name
        recipe.__module__ = namespace["__name__"]
        source = row["bridge"].format(mode=mode, gpus=spec.world_size())
        recipe.__doc__ = docstring(row["title"], mode, spec, source, nemo_name(row.get("nemo"), mode))
        recipe.summary = summary(row["title"], mode, spec)  # one line for `recipes list` (plugtron.recipes.registry)
        recipe.world_size = spec.world_size()
        namespace[fn_name] = recipe
        out[name] = (fn_name, summary(row["title"], mode, spec))
    return out
