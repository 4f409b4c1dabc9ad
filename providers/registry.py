"""Provider names usable from YAML and the command line (``model.provider: llama3_8b``).

The names are the entry-point group ``plugtron.providers`` (``plugtron.registry``): plugtron's own
in its pyproject.toml, a model-family package's in its own. A config can only *pick* one of the
registered classes, never name a module. Torch-free until a class is actually looked up (the CLI
validates names without importing Megatron).
"""

from __future__ import annotations

from typing import List, Optional

from plugtron import registry


def names() -> List[str]:
    return registry.names("provider")


def provider_class(name, where: str = "provider") -> type:
    """The provider class registered under ``name``; a ``ConfigError`` (with a suggestion) if none."""
    return registry.load("provider", name, where)


def provider_name(cls: type) -> Optional[str]:
    """The registered name of exactly ``cls`` (not a subclass), or ``None``."""
    return registry.name_of("provider", cls)
