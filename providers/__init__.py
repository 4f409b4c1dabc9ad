"""Model providers: Megatron-Core ``TransformerConfig`` subclasses that also build the model.

The classes are exported lazily: importing this package (or its torch-free ``registry`` and
``hf.commands``) does not import torch or Megatron-Core, so the CLI stays fast.
"""

from plugtron.providers.registry import PROVIDERS, provider_class

_CLASSES = {
    "GPTModelProvider": "gpt", "LlamaProvider": "llama", "Llama2Provider": "llama2", "Llama3Provider": "llama3",
    "Llama31Provider": "llama31", "Llama2_7B": "llama2_7b", "Llama3_8B": "llama3_8b", "Llama3_70B": "llama3_70b",
    "Llama31_8B": "llama31_8b", "Llama31_70B": "llama31_70b", "Llama32_1B": "llama32_1b",
    "MistralProvider": "mistral", "Mistral_7B": "mistral_7b", "Qwen2Provider": "qwen2",
    "Qwen25_0_5B": "qwen25_0_5b", "Qwen25_7B": "qwen25_7b", "MixtralProvider": "mixtral",
    "Mixtral_8x7B": "mixtral_8x7b", "GPT2Provider": "gpt2", "GPT2_Small": "gpt2_small",
    "T5ModelProvider": "t5", "T5_220M": "t5_220m", "MambaProvider": "mamba", "Mamba2_130M": "mamba2_130m",
}


def __getattr__(name):
    if name in _CLASSES:
        return provider_class(_CLASSES[name])
    raise AttributeError(f"module 'plugtron.providers' has no attribute {name!r}")


__all__ = sorted(_CLASSES) + ["PROVIDERS", "provider_class"]
