"""Run summary at the end of every run (former NeMo / Lightning end-of-fit report; Bridge prints none).
On by default.

Toggle: ``logger.run_summary``. When training ends (``on_train_end``), global rank 0 logs:
iterations done (from where to where), final train loss, final and best validation loss, tokens
seen in this run (real tokens: SFT padding is reported apart, not counted), wall time, mean throughput
(real tokens/s), where the checkpoints, ``metrics.jsonl``, TensorBoard,
W&B and MLflow data are (or that nothing was saved), and the command line to resume. The same text is kept in ``self.text``.
"""

from __future__ import annotations

import logging
import math
import os
import time

from plugtron.hookspecs import hookimpl
from plugtron.metrics_records import output_dir

log = logging.getLogger("plugtron")


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def launcher(env=os.environ) -> str:
    """How this run was started, for the resume command: ``plugtron``, or torchrun with the same
    processes per node (and nodes) when torchrun started it."""
    local = env.get("LOCAL_WORLD_SIZE")
    if not local or "TORCHELASTIC_RUN_ID" not in env:
        return "plugtron"
    nodes = max(1, int(env.get("WORLD_SIZE", local)) // max(1, int(local)))
    nodes_args = f"--nnodes={nodes} <the same rendezvous options> " if nodes > 1 else ""
    return f"torchrun {nodes_args}--nproc_per_node={local} -m plugtron"


class RunSummary:
    def __init__(self, config):
        self.config = config
        from plugtron.training.metrics import TokenCount

        self.tokens = TokenCount(config)  # real tokens of this run's steps, summed on the device
        self.start_time = self.start_iter = None
        self.train_loss = self.valid_loss = self.best_valid = None
        self.text = None

    @hookimpl
    def on_train_start(self, state):
        self.start_time, self.start_iter = time.perf_counter(), state.iteration
        self.tokens.reset()

    @hookimpl
    def on_step(self, state, metrics):
        self.tokens.add(metrics)

    @hookimpl
    def on_log(self, state, log):
        self.train_loss = log["loss"]

    @hookimpl
    def on_eval(self, state, split, metrics):
        if split == "valid":
            self.valid_loss = metrics["loss"]
            self.best_valid = metrics["loss"] if self.best_valid is None else min(self.best_valid, metrics["loss"])

    def build(self, state, tokens: int) -> str:
        cfg = self.config
        wall = time.perf_counter() - self.start_time
        done = state.iteration - self.start_iter
        padding = done * self.tokens.per_step - tokens
        apart = f" (+ {padding:,} padding, not counted)" if padding > 0 else ""
        lines = [
            "run summary:",
            f"  iterations: {self.start_iter} -> {state.iteration} ({done} in this run, of train_iters {cfg.train.train_iters})",
            f"  train loss (last log): {_fmt(self.train_loss)} | valid loss: last {_fmt(self.valid_loss)}, best {_fmt(self.best_valid)}",
            f"  tokens seen in this run: {tokens:,}{apart} | wall time {wall:.1f}s | mean {tokens / wall if wall > 0 else 0:,.0f} tokens/s",
        ]
        if cfg.checkpoint.save:
            save = os.path.abspath(cfg.checkpoint.save)
            lines.append(f"  checkpoints: {save}")
            lines.append(f"  resume: {launcher()} train <the same config and overrides> checkpoint.load={save}")
            lines.append(f"  generate: plugtron generate {save} --prompt 'Some text'")
        else:
            lines.append("  checkpoints: none saved (set checkpoint.save=DIR to save and be able to resume)")
        out = os.path.abspath(output_dir(cfg))  # the same directory the plugins wrote to
        if cfg.logger.metrics_file:
            if cfg.logger.metrics_dir or cfg.checkpoint.save:
                lines.append(f"  metrics: {os.path.join(out, 'metrics.jsonl')} (plot: plugtron plot {out})")
            else:
                lines.append("  metrics: not written (nothing saved; set logger.metrics_dir=DIR)")
        if cfg.logger.tensorboard_dir:
            lines.append(f"  tensorboard: tensorboard --logdir {os.path.abspath(cfg.logger.tensorboard_dir)}")
        if cfg.logger.wandb_project:
            where = os.path.abspath(os.path.join(cfg.logger.wandb_save_dir or out, "wandb"))
            lines.append(f"  wandb: project {cfg.logger.wandb_project}, local files in {where} "
                         "(an offline run: upload with wandb sync DIR)")
        if cfg.logger.mlflow_experiment:
            uri = cfg.logger.mlflow_tracking_uri or "sqlite:///" + os.path.join(out, "mlruns", "mlflow.db")
            lines.append(f"  mlflow: experiment {cfg.logger.mlflow_experiment}; mlflow ui --backend-store-uri {uri}")
        return "\n".join(lines)

    @hookimpl
    def on_train_end(self, state):
        if self.start_time is None:
            return
        from plugtron.training.step import broadcast_from_last_stage

        # the count lives on the last pipeline stage: every rank takes part (a collective with PP > 1)
        tokens = int(broadcast_from_last_stage(self.tokens.total())[0])
        if state.is_rank0:
            self.text = self.build(state, tokens)
            log.info(self.text)
