"""Hugging Face conversion: ``AutoBridge.import_ckpt`` / ``AutoBridge.export_ckpt`` and the
``plugtron convert`` commands. Families: Llama, Mistral, Qwen2, Mixtral, GPT-2 (and the rest of ``configs.FAMILIES``).

Exports are lazy so that ``hf.commands`` (argument parsing) does not import torch."""

_LAZY = {
    "AutoBridge": "plugtron.providers.hf.bridge",
    "ConversionError": "plugtron.providers.hf.errors",
    "UnsupportedArchitecture": "plugtron.providers.hf.errors",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'plugtron.providers.hf' has no attribute {name!r}")


__all__ = list(_LAZY)
