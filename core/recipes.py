"""Built-in recipes: functions returning a complete ``ConfigContainer``.

``tiny`` is what ``plugtron train`` runs with no arguments: a 4-layer GPT on the byte-level
tokenized corpus bundled with plugtron, sized to train in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

from typing import Callable, Dict

from plugtron.errors import ConfigError


def tiny():
    from megatron.core.distributed import DistributedDataParallelConfig
    from megatron.core.optimizer import OptimizerConfig

    from plugtron.config import (
        CheckpointConfig, ConfigContainer, GPTDatasetConfig, LoggerConfig, SchedulerConfig,
        TokenizerConfig, TrainingConfig,
    )
    from plugtron.providers.gpt import GPTModelProvider

    seq = 128
    return ConfigContainer(
        model=GPTModelProvider(
            num_layers=4,
            hidden_size=128,
            num_attention_heads=4,
            seq_length=seq,
            hidden_dropout=0.0,
            attention_dropout=0.0,
            position_embedding_type="rope",
            normalization="RMSNorm",
            add_bias_linear=False,
            init_method_std=0.02,
            use_cpu_initialization=True,
            transformer_impl="local",
            make_vocab_size_divisible_by=64,
        ),
        train=TrainingConfig(
            micro_batch_size=4, global_batch_size=16, train_iters=300, eval_interval=100, eval_iters=5
        ),
        optimizer=OptimizerConfig(
            optimizer="adam", lr=2e-3, min_lr=2e-4, weight_decay=0.1, adam_beta2=0.95, clip_grad=1.0
        ),
        scheduler=SchedulerConfig(lr_decay_style="cosine", lr_warmup_iters=20),
        dataset=GPTDatasetConfig(sequence_length=seq, split="949,50,1"),
        tokenizer=TokenizerConfig(tokenizer_type="ByteLevelTokenizer"),
        ddp=DistributedDataParallelConfig(),
        checkpoint=CheckpointConfig(),
        logger=LoggerConfig(log_interval=20),
    )


def defaults():
    """Megatron Bridge's defaults with nothing filled in (the model must be given)."""
    from plugtron.config import ConfigContainer

    return ConfigContainer()


RECIPES: Dict[str, Callable] = {"tiny": tiny, "none": defaults}


def get_recipe(name: str) -> Callable:
    if name not in RECIPES:
        raise ConfigError([f"recipe: unknown recipe {name!r}; available: {', '.join(RECIPES)}"])
    return RECIPES[name]


def distributed_fused_adam_with_cosine_annealing(
    max_lr: float = 3e-4,
    min_lr: float = 3e-5,
    lr_warmup_iters: int = 2000,
    lr_decay_iters: int | None = None,
    weight_decay: float = 0.1,
    adam_beta1: float = 0.9,
    adam_beta2: float = 0.95,
    clip_grad: float = 1.0,
):
    """NeMo's recipe helper of the same name: distributed Adam + cosine schedule, as
    ``(OptimizerConfig, SchedulerConfig)``."""
    from megatron.core.optimizer import OptimizerConfig

    from plugtron.config import SchedulerConfig

    optimizer = OptimizerConfig(
        optimizer="adam", lr=max_lr, min_lr=min_lr, weight_decay=weight_decay, adam_beta1=adam_beta1,
        adam_beta2=adam_beta2, clip_grad=clip_grad, use_distributed_optimizer=True,
    )
    scheduler = SchedulerConfig(lr_decay_style="cosine", lr_warmup_iters=lr_warmup_iters, lr_decay_iters=lr_decay_iters)
    return optimizer, scheduler
