"""Model providers: Megatron-Core ``TransformerConfig`` subclasses that also build the model.

Importing this package imports Megatron-Core (and torch); the CLI imports it only when a command
needs a model or a resolved config.
"""

from plugtron.providers.gpt import GPTModelProvider
from plugtron.providers.llama import LlamaProvider

__all__ = ["GPTModelProvider", "LlamaProvider"]
