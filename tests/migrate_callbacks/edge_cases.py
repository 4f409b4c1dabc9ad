# -*- coding: utf-8 -*-
"""Shapes of code the migration must carry over intact: multi-line signatures, one-line hooks,
semicolons, comments and non-ASCII text, f-strings, nested functions, decorators, a local named like
a plugtron argument, several Lightning hooks into one plugtron hook, Lightning annotations."""
from __future__ import annotations

import os
from typing import Any, Dict

import pytorch_lightning as pl
from pytorch_lightning import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from nemo.utils.exp_manager import TimingCallback
from typing_extensions import override

LIMIT = 3


def helper(trainer: pl.Trainer, x: int = 1) -> int:
    return x + 1


class Edge(Callback):
    """Ünïcode doc."""

    names: Dict[str, Any] = {}

    def __init__(self, path: str = os.getcwd(), *args, verbose=False, ratio: float = 0.5, tm=TimingCallback(), **kwargs):
        super(Edge, self).__init__()
        self.path = path  # où
        self.verbose = verbose

    @override
    def on_fit_start(
        self,
        trainer: "pl.Trainer",
        pl_module: "pl.LightningModule",
    ) -> None:
        # first comment
        state = {"a": 1}
        self.fit_state = state
        self.at = trainer.global_step  # ünï

    def on_train_start(self, trainer, pl_module):
        if trainer.global_step > 0:
            return
        self.fresh = True
        trainer.limit_val_batches = 2

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.opt = optimizer
        try:
            x = 1 / 0
        except ZeroDivisionError:
            self.log("bad", 1)
        for g in trainer.lightning_module.parameters():
            pass
        with open(os.devnull) as f:
            self.dev = f.name

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *rest):
        def inner(t=trainer.global_step):
            return t * 2
        self.vals = [inner() for _ in range(2)]
        self.rest = rest
        msg = f"it {trainer.global_step} {'x'}"
        self.msg = msg
        if outputs is None: self.none = True

    @rank_zero_only
    def on_test_end(self, trainer, pl_module):
        self.tested = True

    def on_exception(self, trainer, pl_module, exception):
        self.exc = repr(exception)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: Dict[str, Any]) -> None:
        checkpoint["edge"] = 1

    def on_custom(self):
        pass

    @staticmethod
    def util(trainer: pl.Trainer):
        return trainer.global_step

    def on_train_end(self, trainer, pl_module): self.ended = trainer.global_step; self.more = 1
