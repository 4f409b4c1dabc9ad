"""Hugging Face conversion: ``AutoBridge.import_ckpt`` / ``AutoBridge.export_ckpt`` and the
``plugtron convert`` commands. Families: Llama, Mistral, Qwen2, Mixtral, GPT-2."""

from plugtron.providers.hf.bridge import AutoBridge
from plugtron.providers.hf.errors import ConversionError, UnsupportedArchitecture

__all__ = ["AutoBridge", "ConversionError", "UnsupportedArchitecture"]
