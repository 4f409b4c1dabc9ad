"""Model providers: Megatron-Core ``TransformerConfig`` subclasses that also build the model.

The classes are exported lazily, by class name, from ``registry.PROVIDERS`` (the one table of
providers): importing this package (or its torch-free ``registry`` and ``hf.commands``) does not
import torch or Megatron-Core, so the CLI stays fast.
"""

from plugtron.providers.registry import PROVIDERS, provider_class

# class name -> registered name, e.g. "Llama3_8B" -> "llama3_8b"
_CLASSES = {path.split(":")[1]: name for name, path in PROVIDERS.items()}


def __getattr__(name):
    if name in _CLASSES:
        return provider_class(_CLASSES[name])
    raise AttributeError(f"module 'plugtron.providers' has no attribute {name!r}")


__all__ = sorted(_CLASSES) + ["PROVIDERS", "provider_class"]
