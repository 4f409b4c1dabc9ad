"""Two callbacks in one file; LossMonitor reaches into the LightningModule and logs through Lightning,
which has no plugtron equivalent."""

import math

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class LossMonitor(Callback):
    def __init__(self, patience: int = 100):
        self.patience = patience
        self.losses = []
        self.evals = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = float(outputs["loss"])
        self.losses.append(loss)
        self.log("monitored_loss", loss)
        pl_module.log("lr", trainer.optimizers[0].param_groups[0]["lr"])
        if math.isnan(loss) or len(self.losses) > self.patience:
            trainer.should_stop = True
        if trainer.strategy.is_global_zero and pl_module.global_rank == 0:
            print(f"loss {loss}")

    def on_validation_epoch_end(self, trainer, pl_module):
        self.evals.append(trainer.global_step)
        self.val_loss = trainer.callback_metrics.get("val_loss")

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs = trainer.current_epoch


class Unused(Callback):
    pass
