"""plugtron: a plugin-first LLM trainer on Megatron-Core.

Importing ``plugtron`` is cheap (no torch). See ``plugtron.config`` for the config,
``plugtron.hookspecs`` for the plugin hooks and ``plugtron.training`` for the loop.
"""

__version__ = "0.1.0"

# The version of what packages build against: the hook specs, the entry-point groups and what each
# kind's object must provide (docs/plugins.md). Semantic: a breaking change (a hook's signature, a
# removed hook or group) bumps the major, an addition the minor. A package declares the range it
# supports (the ``plugtron.api`` entry-point group; ``plugtron.api_check``).
PLUGIN_API = "1.0.0"
