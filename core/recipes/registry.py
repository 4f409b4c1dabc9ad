"""Recipe names -> functions, torch-free: ``plugtron recipes list``, ``train --help`` and the
unknown-recipe error read this table without importing Megatron-Core (the family modules hold plain
data and define their functions with lazy imports)."""

from __future__ import annotations

import difflib
import importlib
from typing import Callable, Dict, List, Tuple

from plugtron.errors import ConfigError

# Modules whose RECIPES map ``name -> (function name, one-line summary)``; listed in this order.
MODULES = ("cpu", "llama", "qwen", "qwen3", "qwen3_moe", "olmo2", "mixtral", "gpt2_t5")


def _table() -> Dict[str, Tuple[str, str, str]]:
    """``name -> (module, function name, summary)`` over every recipe module."""
    out = {}
    for short in MODULES:
        module = f"plugtron.recipes.{short}"
        for name, (fn, line) in importlib.import_module(module).RECIPES.items():
            out[name] = (module, fn, line)
    return out


def names() -> List[str]:
    return list(_table())


def summaries() -> List[Tuple[str, str]]:
    """``(name, one line)`` for every recipe, in listing order."""
    return [(name, line) for name, (_, _, line) in _table().items()]


def unknown(name: str) -> ConfigError:
    """The error for a recipe name that does not exist: close names first, then every name."""
    table = _table()
    near = [n for n in table if n.startswith(f"{name}_")] or difflib.get_close_matches(name, list(table), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return ConfigError([f"recipe: unknown recipe {name!r}{hint}; available (plugtron recipes list): {', '.join(table)}"])


def get_recipe(name: str) -> Callable:
    """The function of recipe ``name``; a ``ConfigError`` listing the names if there is none."""
    table = _table()
    if not isinstance(name, str) or name not in table:
        raise unknown(str(name))
    module, fn, _ = table[name]
    return getattr(importlib.import_module(module), fn)


def world_size(name: str) -> int:
    """The number of processes recipe ``name`` is laid out for (1 for the CPU-sized ones)."""
    from plugtron.recipes.common import expand

    table = _table()
    if name not in table:
        raise unknown(name)
    family = getattr(importlib.import_module(table[name][0]), "TABLE", {})
    return next((spec.world_size() for recipe, _m, _mode, spec, _row in expand(family) if recipe == name), 1)
