"""Recipe names -> functions: the entry-point group ``plugtron.recipes`` (``plugtron.registry``).

Torch-free: ``plugtron recipes list``, ``train --help`` and the unknown-recipe error read the names
without importing Megatron-Core (the family modules hold plain data and define their functions with
lazy imports). A recipe function may carry ``summary`` (one line) and ``world_size`` (processes it
is laid out for); otherwise its docstring's first line and 1.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Callable, Dict, List, Tuple

from plugtron import registry
from plugtron.errors import ConfigError


def names() -> List[str]:
    return registry.names("recipe")


def summary_of(fn: Callable) -> str:
    return getattr(fn, "summary", None) or (inspect.getdoc(fn) or "").split("\n")[0]


def summaries() -> List[Tuple[str, str]]:
    """``(name, one line)`` for every recipe, in listing order (a broken entry says so)."""
    out = []
    for name in names():
        try:
            out.append((name, summary_of(get_recipe(name))))
        except Exception as exc:  # listing never crashes; using the recipe gives the full error
            out.append((name, f"<unusable: {str(exc).splitlines()[0]}>"))
    return out


def unknown(name: str) -> ConfigError:
    """The error for a recipe name that does not exist: close names first, then every name."""
    known = names()
    near = [n for n in known if n.startswith(f"{name}_")] or difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(near)}?)" if near else registry.suggestion(name, "recipe")
    return ConfigError([f"recipe: unknown recipe {name!r}{hint}; available (plugtron recipes list): {', '.join(known)}"])


def get_recipe(name: str) -> Callable:
    """The function of recipe ``name``; a ``ConfigError`` listing the names if there is none."""
    if not isinstance(name, str) or name not in registry.entries("recipe"):
        raise unknown(str(name))
    return registry.load("recipe", name, "recipe")


def world_size(name: str) -> int:
    """The number of processes recipe ``name`` is laid out for (1 for the CPU-sized ones)."""
    return int(getattr(get_recipe(name), "world_size", 1))


def plain_data(name: str) -> Dict:
    """Recipe ``name``'s torch-free sections (train, scheduler, dataset, tokenizer, logger, ...) as
    plain data, without importing Megatron-Core: ``plugins list`` reads a config as recipe < YAML <
    overrides like ``train`` does. The Megatron sections (model, optimizer, ddp, mixed_precision)
    are left out. A recipe module without a ``TABLE`` or ``plain_sections`` (a package's own) gives
    ``{}``: its sections are then the defaults until ``train`` builds it."""
    import importlib

    from plugtron.config.converter import unstructure
    from plugtron.recipes.common import plain_from_table

    module = importlib.import_module(get_recipe(name).__module__)
    own = getattr(module, "plain_sections", None)
    sections = own(name) if own is not None else plain_from_table(getattr(module, "TABLE", {}), name)
    return {key: unstructure(value) for key, value in sections.items() if value is not None}
