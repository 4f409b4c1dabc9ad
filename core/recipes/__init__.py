"""Built-in recipes: plain functions returning a complete ``ConfigContainer``.

    from plugtron.recipes import llama3_8b_pretrain_config
    cfg = llama3_8b_pretrain_config()          # Megatron Bridge's Llama 3 8B pretraining values
    cfg.train.train_iters = 100

On the command line ``--recipe llama3_8b_pretrain`` (the function name without ``_config``), under
the YAML file and the overrides. ``plugtron recipes list`` lists them, ``plugtron recipes show NAME``
prints one resolved. Families: ``llama`` (3, 3.1, 3.2), ``qwen`` (2.5), ``mixtral``, ``gpt2_t5``;
``cpu`` holds the CPU-sized ones (``tiny``, ``tiny_llama``, ...). Importing this package does not import torch.
"""

from __future__ import annotations

from plugtron.recipes.registry import get_recipe, names, summaries, world_size

_ALIASES = {"tiny": "cpu", "defaults": "cpu", "distributed_fused_adam_with_cosine_annealing": "common"}


def __getattr__(attr):
    """``plugtron.recipes.<function>``: the recipe functions, imported from their family module."""
    import importlib

    from plugtron import registry

    if attr in _ALIASES:
        return getattr(importlib.import_module(f"plugtron.recipes.{_ALIASES[attr]}"), attr)
    for name, found in registry.entries("recipe").items():
        if found.attr == attr and found.module.startswith("plugtron.recipes."):
            return registry.load("recipe", name)
    raise AttributeError(f"module 'plugtron.recipes' has no attribute {attr!r}")


def __dir__():
    return sorted(list(globals()) + [f"{name}_config" for name in names()])


__all__ = ["get_recipe", "names", "summaries", "world_size"]
