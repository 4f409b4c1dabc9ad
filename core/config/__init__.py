"""plugtron's configuration: one ``ConfigContainer`` with typed sections.

Torch-free sections are imported eagerly; Megatron-Core's own dataclasses (``OptimizerConfig``,
``DistributedDataParallelConfig``) and the model providers are re-exported lazily, so importing
``plugtron.config`` does not import torch.
"""

from plugtron.config.container import ConfigContainer, builtin_toggles
from plugtron.config.data import FinetuningDatasetConfig, GPTDatasetConfig, PackedSequenceSpecs, TokenizerConfig
from plugtron.config.extras import (CommOverlapConfig, CompileConfig, DeepEPConfig, LoraConfig, MoETokenDropConfig, PluginSettings,
                                    ProfilingConfig)
from plugtron.config.loader import from_yaml, load_config, parse_overrides, to_yaml
from plugtron.config.precision import PRESETS as MIXED_PRECISION_PRESETS
from plugtron.config.precision import MixedPrecisionConfig
from plugtron.config.training import (
    CheckpointConfig,
    DistributedInitConfig,
    LoggerConfig,
    RNGConfig,
    SchedulerConfig,
    TrainingConfig,
)

_LAZY = {
    "OptimizerConfig": ("megatron.core.optimizer", "OptimizerConfig"),
    "DistributedDataParallelConfig": ("megatron.core.distributed", "DistributedDataParallelConfig"),
    "GPTModelProvider": ("plugtron.providers.gpt", "GPTModelProvider"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'plugtron.config' has no attribute {name!r}")


__all__ = [
    "CheckpointConfig", "CommOverlapConfig", "CompileConfig", "ConfigContainer", "DistributedDataParallelConfig",
    "DistributedInitConfig", "FinetuningDatasetConfig", "GPTDatasetConfig", "PackedSequenceSpecs", "GPTModelProvider", "LoggerConfig", "LoraConfig",
    "DeepEPConfig", "MIXED_PRECISION_PRESETS", "MixedPrecisionConfig", "MoETokenDropConfig", "OptimizerConfig", "PluginSettings",
    "ProfilingConfig", "RNGConfig", "SchedulerConfig", "TokenizerConfig", "TrainingConfig",
    "builtin_toggles", "from_yaml", "load_config", "parse_overrides", "to_yaml",
]
