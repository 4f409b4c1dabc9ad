"""Weights & Biases logging (former NeMo ``WandbLogger`` / NeMo-Run ``WandbPlugin``; Bridge's W&B writer).

Toggle: ``logger.wandb_project``. One W&B run on global rank 0, named ``logger.wandb_exp_name``, in
``logger.wandb_entity`` (your default entity when unset), its local files under
``logger.wandb_save_dir`` (default: the directory of ``metrics.jsonl``, see the metrics_file plugin).
The resolved config is the run's config. Every ``on_log`` record is logged at its iteration as
``train/<key>`` - the loop's keys and every metric other plugins contribute through
``collect_metrics`` - and evaluations as ``valid/loss``, ``valid/ppl`` (``test/...``).

No network needed: ``logger.wandb_mode=offline`` (or ``WANDB_MODE=offline`` in the environment)
keeps the run on disk (``<save_dir>/wandb/offline-run-*``); upload it later with ``wandb sync DIR``.

Resume: the run id is saved with every checkpoint (this plugin's ``on_save`` state) and a resumed
training continues the same W&B run (``resume="allow"``), so one run spans kills and restarts.
A run that raises is finished with exit code 1 (W&B shows it as failed); a stop on a signal
(the preemption plugin) is marked preempting, then finished normally.

W&B is an optional extra (``pip install 'plugtron[wandb]'``), imported only when this plugin is
enabled; enabling it without the package is a config error naming the extra.
"""

from __future__ import annotations

from typing import Optional

from plugtron.errors import ConfigError
from plugtron.hookspecs import hookimpl
from plugtron.plugins import logger_checks
from plugtron.plugins.optional_package import missing_extra
from plugtron.metrics_records import numeric_items, output_dir



class Wandb:
    @staticmethod
    def config_problems(config):
        return missing_extra("logger.wandb_project", "wandb", "wandb")

    def __init__(self, config):
        save_dir = config.logger.wandb_save_dir
        problem = save_dir and logger_checks.writable_dir_problem("logger.wandb_save_dir", save_dir)
        if problem:  # this machine's file system: checked at load, before the model is built
            raise ConfigError([problem])
        self.config = config
        self.run = None
        self.run_id: Optional[str] = None  # from the checkpoint on resume

    @hookimpl
    def on_load(self, state, plugin_state):
        if plugin_state:
            self.run_id = plugin_state.get("run_id")

    @hookimpl
    def on_train_start(self, state):
        if not state.is_rank0:
            return
        import os

        import wandb  # the optional extra, checked by config_problems

        from plugtron.config import to_yaml
        import yaml

        lg = self.config.logger
        save_dir = lg.wandb_save_dir or output_dir(self.config)
        os.makedirs(save_dir, exist_ok=True)
        self.run = wandb.init(
            project=lg.wandb_project, entity=lg.wandb_entity, name=lg.wandb_exp_name, dir=save_dir,
            config=yaml.safe_load(to_yaml(self.config)),  # plain data, as plugtron config show prints it
            id=self.run_id, resume="allow", mode=lg.wandb_mode,  # None: WANDB_MODE or W&B's default
            settings=wandb.Settings(silent=True, console="off"),  # the console is plugtron's log already
        )
        self.run_id = self.run.id

    @hookimpl
    def on_log(self, state, log):
        if self.run is not None:
            self.run.log(numeric_items(log, "train"), step=log["iteration"])

    @hookimpl
    def on_eval_log(self, state, split, log):
        if self.run is not None:
            # W&B steps must not go back: an eval at iteration N goes with N's train record
            self.run.log(numeric_items(log, split, skip=("iteration", "iters")), step=state.iteration)

    @hookimpl
    def on_save(self, state, checkpoint_dir):
        # Only rank 0 has a run; the others save nothing (a resume reads rank 0's state when the world changed).
        return {"run_id": self.run_id} if self.run_id is not None else None

    def _finish(self, exit_code: int) -> None:
        run, self.run = self.run, None
        if run is not None:
            run.finish(exit_code=exit_code)

    @hookimpl
    def on_train_end(self, state):
        if self.run is not None and state.stop_reason and "preemption" in state.stop_reason:
            self.run.mark_preempting()
        self._finish(0)

    @hookimpl
    def on_exception(self, state, exc):
        self._finish(1)
