"""The training loop on Megatron-Core. ``train(config)`` is the entry point; ``Trainer`` is the
run it builds (its methods are the loop's steps, named in the hookspecs pseudocode)."""

from plugtron.training.trainer import Trainer, train

__all__ = ["Trainer", "train"]
