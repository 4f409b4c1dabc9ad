"""TensorBoard logging (former NeMo / Lightning ``TensorBoardLogger``; Megatron Bridge's TensorBoard writer).

Toggle: ``logger.tensorboard_dir`` (the event files' directory). Every ``on_log`` record becomes
``train/<key>`` scalars at its iteration - loss, lr, grad_norm, tokens_per_sec, ... and every metric
other plugins contribute through ``collect_metrics`` (so a new metric reaches TensorBoard without
touching this plugin); evaluations become ``valid/loss`` / ``test/loss`` (and ``<split>/ppl`` with
``logger.log_validation_ppl_to_tensorboard``); the resolved config is written once as text
(``config``). ``logger.tensorboard_log_interval`` thins the train scalars to iterations that are a
multiple of it. Written on global rank 0 only.

TensorBoard is an optional extra (``pip install plugtron[tensorboard]``), imported only when this
plugin is enabled; enabling it without the package is a config error naming the extra.
"""

from __future__ import annotations

import math
import numbers

from plugtron.errors import ConfigError
from plugtron.hookspecs import hookimpl
from plugtron.metrics_records import numeric_items
from plugtron.plugins import logger_checks
from plugtron.plugins.optional_package import missing_extra
from plugtron.plugins.teardown import ReleaseAtEnd


class TensorBoard(ReleaseAtEnd):  # release() at on_train_end and on_exception
    @staticmethod
    def config_problems(config):
        # tensorboard_log_interval >= 1: the config's rule table
        return missing_extra("logger.tensorboard_dir", "tensorboard", "tensorboard")

    def __init__(self, config):
        problem = logger_checks.writable_dir_problem("logger.tensorboard_dir", config.logger.tensorboard_dir)
        if problem:  # this machine's file system: checked at load, before the model is built
            raise ConfigError([problem])
        self.config = config
        self.dir = config.logger.tensorboard_dir
        self.interval = config.logger.tensorboard_log_interval
        self.ppl = config.logger.log_validation_ppl_to_tensorboard
        self.writer = None

    @hookimpl
    def on_train_start(self, state):
        if not state.is_rank0:
            return
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard extra (checked above)

        from plugtron.config import to_yaml

        self.writer = SummaryWriter(log_dir=self.dir)
        # Markdown code block: TensorBoard's text plugin renders markdown, which would mangle YAML.
        self.writer.add_text("config", "```\n" + to_yaml(self.config) + "\n```", global_step=state.iteration)

    @hookimpl
    def on_log(self, state, log):
        step = log["iteration"]
        if self.writer is None or step % self.interval:
            return
        for key, value in log.items():
            # bools are Numbers too, and a None grad_norm / nan loss has nothing to plot
            if key != "iteration" and isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"train/{key}", float(value), step)

    @hookimpl
    def on_eval_log(self, state, split, log):
        if self.writer is None:
            return
        skip = ("iteration", "iters") + (() if self.ppl else ("ppl",))
        for key, value in numeric_items(log, split, skip=skip).items():  # loss, ppl and plugins' keys
            self.writer.add_scalar(key, value, state.iteration)
        self.writer.flush()  # evaluations are rare; make them visible at once

    def release(self) -> None:
        w, self.writer = self.writer, None
        if w is not None:
            w.close()
