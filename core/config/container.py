"""``ConfigContainer``: the one config of a run, and ``validate()``, which derives and checks.

This module imports neither torch nor Megatron-Core at import time: the Megatron-typed sections
(``model``, ``optimizer``, ``ddp``) are forward references resolved on first structure/validate.
"""

import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

import attrs

from plugtron.config._fields import iter_toggles, toggle
from plugtron.config.data import FinetuningDatasetConfig, GPTDatasetConfig, TokenizerConfig
from plugtron.config.extras import (
    CommOverlapConfig,
    CompileConfig,
    DeepEPConfig,
    FaultToleranceConfig,
    LoraConfig,
    MoETokenDropConfig,
    PluginSettings,
    ProfilingConfig,
    StragglerDetectionConfig,
)
from plugtron.config.precision import PRESETS, MixedPrecisionConfig
from plugtron.config.training import (
    CheckpointConfig,
    DistributedInitConfig,
    LoggerConfig,
    RNGConfig,
    SchedulerConfig,
    TrainingConfig,
)
from plugtron.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from megatron.core.distributed import DistributedDataParallelConfig
    from megatron.core.optimizer import OptimizerConfig

    from plugtron.providers.gpt import GPTModelProvider


def _default_model():
    from plugtron.providers.gpt import GPTModelProvider

    return GPTModelProvider()


def _default_optimizer():
    from megatron.core.optimizer import OptimizerConfig

    return OptimizerConfig()


def _default_ddp():
    from megatron.core.distributed import DistributedDataParallelConfig

    return DistributedDataParallelConfig()


@attrs.define(kw_only=True, eq=False)
class ConfigContainer:
    """Every setting of a run. Sections and their NeMo 2.0 origins are in ``docs/config.md``."""

    model: "GPTModelProvider" = attrs.field(factory=_default_model)
    train: TrainingConfig = attrs.field(factory=TrainingConfig)
    optimizer: "OptimizerConfig" = attrs.field(factory=_default_optimizer)
    # the options of the optimizer optimizer.optimizer names, when it declares any (plugtron.optimizers)
    optimizer_options: Dict[str, Any] = attrs.field(factory=dict)
    scheduler: SchedulerConfig = attrs.field(factory=SchedulerConfig)
    dataset: Union[GPTDatasetConfig, FinetuningDatasetConfig] = attrs.field(factory=GPTDatasetConfig)
    checkpoint: CheckpointConfig = attrs.field(factory=CheckpointConfig)
    logger: LoggerConfig = attrs.field(factory=LoggerConfig)
    tokenizer: TokenizerConfig = attrs.field(factory=TokenizerConfig)
    dist: DistributedInitConfig = attrs.field(factory=DistributedInitConfig)
    ddp: "DistributedDataParallelConfig" = attrs.field(factory=_default_ddp)
    mixed_precision: Union[str, MixedPrecisionConfig, None] = None
    profiling: ProfilingConfig = attrs.field(factory=ProfilingConfig)
    comm_overlap: Optional[CommOverlapConfig] = toggle("comm_overlap", default=None)
    moe_token_drop: Optional[MoETokenDropConfig] = toggle("moe_token_drop", default=None)
    deepep: Optional[DeepEPConfig] = toggle("deepep", default=None)
    peft: Optional[LoraConfig] = toggle("peft", default=None)
    compile: Optional[CompileConfig] = toggle("compile", default=None)
    straggler: StragglerDetectionConfig = attrs.field(factory=StragglerDetectionConfig)
    ft: FaultToleranceConfig = attrs.field(factory=FaultToleranceConfig)
    rng: RNGConfig = attrs.field(factory=RNGConfig)
    plugins: Dict[str, PluginSettings] = attrs.field(factory=dict)

    # Derived by validate(); not part of the YAML surface.
    data_parallel_size: int = attrs.field(default=1, init=False)
    num_microbatches: int = attrs.field(default=1, init=False)
    world_size: int = attrs.field(default=1, init=False)
    # Keys given explicitly, dotted path -> where ("cfg.yaml", "command line"); set by load_config.
    user_set: Dict[str, str] = attrs.field(factory=dict, init=False, repr=False)
    # Where the config came from ("recipe 'tiny' + cfg.yaml + command line"): the header of every
    # error about it (set by load_config; "config" for a container built in code).
    source: str = attrs.field(default="config", init=False, repr=False, eq=False)
    # What loading decided that the user did not write (e.g. a sequence length cut to the checkpoint
    # model's); logged when a run starts. Set by load_config.
    notes: List[str] = attrs.field(factory=list, init=False, repr=False)

    def is_user_set(self, path: str) -> Optional[str]:
        """Where the user set ``path`` (``"model.hidden_dropout"``) explicitly - a YAML file or
        ``"command line"`` - or ``None`` if it comes from the recipe or a default. Plugins use it to
        fill only the fields the user left alone."""
        return self.user_set.get(path)

    def __eq__(self, other: Any) -> bool:
        # Equality of what a config can express; code-valued fields derived by Megatron
        # (init methods) are compared through the values they are derived from.
        if not isinstance(other, ConfigContainer):
            return NotImplemented
        from plugtron.config.converter import unstructure

        return unstructure(self) == unstructure(other)

    def validate(self, world_size: Optional[int] = None) -> "ConfigContainer":
        """Derive dependent values and reject impossible combinations (all problems at once).

        Derives: mixed-precision settings onto model/optimizer/ddp, ``model.vocab_size`` from the
        tokenizer, data-parallel size from world size and TP x PP x CP, number of microbatches,
        scheduler warmup/decay steps (in samples) from ``train_iters`` and ``global_batch_size``.
        Idempotent. Returns ``self``.
        """
        from plugtron.config.validation import validate

        validate(self, world_size if world_size is not None else world_size_from_env())
        return self

    def resolved_mixed_precision(self) -> Optional[MixedPrecisionConfig]:
        mp = self.mixed_precision
        if mp is None or isinstance(mp, MixedPrecisionConfig):
            return mp
        if mp not in PRESETS:
            raise ConfigError([f"mixed_precision: unknown preset {mp!r}; presets: {', '.join(PRESETS)}"])
        from plugtron.config.converter import structure

        return structure(PRESETS[mp], MixedPrecisionConfig)


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when unset); anything but a positive integer is a
    ``ConfigError`` rather than a ``ValueError`` from ``int()``."""
    raw = os.environ.get("WORLD_SIZE", "1")
    text = raw.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 9 and int(text) >= 1):
        raise ConfigError([f"WORLD_SIZE: expected a positive integer (the number of processes), got {raw[:40]!r}"],
                          source="environment")
    return int(text)


def builtin_toggles() -> List[tuple]:
    """``(dotted.path, plugin_name)`` for every built-in plugin switch, without importing torch."""
    return list(iter_toggles(ConfigContainer))


def resolve_types() -> None:
    """Resolve the Megatron-typed forward references (imports Megatron-Core)."""
    from megatron.core.distributed import DistributedDataParallelConfig
    from megatron.core.optimizer import OptimizerConfig

    from plugtron.providers.gpt import GPTModelProvider

    attrs.resolve_types(
        ConfigContainer,
        globalns={
            **globals(),
            "GPTModelProvider": GPTModelProvider,
            "OptimizerConfig": OptimizerConfig,
            "DistributedDataParallelConfig": DistributedDataParallelConfig,
        },
    )
