"""Checkpoints: Megatron distributed checkpoints in Megatron Bridge's directory layout, published
atomically, verified on load, resumed bit for bit. See ``layout`` for the tree and its guarantees.

``layout`` is torch-free; ``Checkpointer`` (torch, Megatron-Core) is imported on first use.
"""

from plugtron.checkpointing import layout

__all__ = ["Checkpointer", "layout"]


def __getattr__(name):
    if name == "Checkpointer":
        from plugtron.checkpointing.manager import Checkpointer

        return Checkpointer
    raise AttributeError(f"module 'plugtron.checkpointing' has no attribute {name!r}")
