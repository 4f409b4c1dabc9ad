"""A garbage-collection callback in NeMo 2.0's style (nemo.lightning.pytorch.callbacks): automatic
collection off while training, a collection every few steps and after each validation."""

import gc

import lightning.pytorch as pl
from lightning.pytorch.callbacks.callback import Callback
from nemo.utils import logging


class GarbageCollectionCallback(Callback):
    """Collect garbage every ``gc_interval_train`` steps and every ``gc_interval_val`` validations."""

    def __init__(self, gc_interval_train: int = 2, gc_interval_val: int = 1) -> None:
        super().__init__()
        assert gc_interval_train > 0, "gc_interval_train should be an integer value larger than 0."
        self.gc_interval_train = gc_interval_train
        self.gc_interval_val = gc_interval_val
        self.train_collections = self.val_collections = 0
        self.validation_global_step = 1

    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        logging.info(f"Disabling automatic garbage collection for {stage}")
        gc.disable()
        self.stage = stage

    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs, batch,
                           batch_idx: int) -> None:
        if trainer.global_step % self.gc_interval_train == 0:  # the step just done
            gc.collect()
            self.train_collections += 1

    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self.validation_global_step % self.gc_interval_val == 0:
            gc.collect()
            self.val_collections += 1
        self.validation_global_step += 1

    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        gc.enable()
