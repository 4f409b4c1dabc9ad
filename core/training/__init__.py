"""The training loop on Megatron-Core. ``train(config)`` is the entry point."""

from plugtron.training.loop import train

__all__ = ["train"]
