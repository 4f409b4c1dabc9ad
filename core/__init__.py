"""plugtron: a plugin-first LLM trainer on Megatron-Core.

Importing ``plugtron`` is cheap (no torch). See ``plugtron.config`` for the config,
``plugtron.hookspecs`` for the plugin hooks and ``plugtron.training`` for the loop.
"""

__version__ = "0.1.0"
