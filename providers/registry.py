"""Provider names usable from YAML and the command line (``model.provider: llama3_8b``).

A fixed table of ``name -> "module:Class"`` inside plugtron: a config can only *pick* one of these
classes, never name a module, so no config value can import arbitrary code. Torch-free until a
class is actually looked up (the CLI validates names without importing Megatron).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Dict

from plugtron.errors import ConfigError

_P = "plugtron.providers."
PROVIDERS: Dict[str, str] = {
    "gpt": _P + "gpt:GPTModelProvider",
    "llama": _P + "llama:LlamaProvider",
    "llama2": _P + "llama:Llama2Provider",
    "llama3": _P + "llama:Llama3Provider",
    "llama31": _P + "llama:Llama31Provider",
    "llama2_7b": _P + "llama:Llama2_7B",
    "llama3_8b": _P + "llama:Llama3_8B",
    "llama3_70b": _P + "llama:Llama3_70B",
    "llama31_8b": _P + "llama:Llama31_8B",
    "llama31_70b": _P + "llama:Llama31_70B",
    "llama31_405b": _P + "llama:Llama31_405B",
    "llama32_1b": _P + "llama:Llama32_1B",
    "llama32_3b": _P + "llama:Llama32_3B",
    "mistral": _P + "families:MistralProvider",
    "mistral_7b": _P + "families:Mistral_7B",
    "qwen2": _P + "families:Qwen2Provider",
    "qwen25_0_5b": _P + "families:Qwen25_0_5B",
    "qwen25_7b": _P + "families:Qwen25_7B",
    "qwen25_72b": _P + "families:Qwen25_72B",
    "qwen3": _P + "qwen3:Qwen3Provider",
    "qwen3_0_6b": _P + "qwen3:Qwen3_0_6B",
    "qwen3_1_7b": _P + "qwen3:Qwen3_1_7B",
    "qwen3_4b": _P + "qwen3:Qwen3_4B",
    "qwen3_8b": _P + "qwen3:Qwen3_8B",
    "qwen3_14b": _P + "qwen3:Qwen3_14B",
    "qwen3_32b": _P + "qwen3:Qwen3_32B",
    "qwen3_moe": _P + "qwen3_moe:Qwen3MoEProvider",
    "qwen3_30b_a3b": _P + "qwen3_moe:Qwen3_30B_A3B",
    "qwen3_235b_a22b": _P + "qwen3_moe:Qwen3_235B_A22B",
    "olmo2": _P + "olmo2:OLMo2Provider",
    "olmo2_7b": _P + "olmo2:OLMo2_7B",
    "olmo2_13b": _P + "olmo2:OLMo2_13B",
    "mixtral": _P + "families:MixtralProvider",
    "mixtral_8x7b": _P + "families:Mixtral_8x7B",
    "gpt2": _P + "families:GPT2Provider",
    "gpt2_small": _P + "families:GPT2_Small",
    "t5": _P + "t5:T5ModelProvider",
    "t5_220m": _P + "t5:T5_220M",
    "mamba": _P + "mamba:MambaProvider",
    "mamba2_130m": _P + "mamba:Mamba2_130M",
}


def provider_class(name) -> type:
    """The provider class registered under ``name``; a ``ConfigError`` (with a suggestion) if none."""
    if not isinstance(name, str) or name not in PROVIDERS:
        near = difflib.get_close_matches(str(name), list(PROVIDERS), n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError([f"provider: unknown provider {name!r}{hint}; known: {', '.join(PROVIDERS)}"])
    module, attr = PROVIDERS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def provider_name(cls: type):
    """The registered name of exactly ``cls`` (not a subclass), or ``None``."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    for name, path in PROVIDERS.items():
        if path == target:
            return name
    return None
