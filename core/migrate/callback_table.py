"""The one table of ``plugtron migrate callback``: Lightning ``Callback`` -> plugtron plugin.

``HOOKS``: each Lightning hook (its positional arguments after ``self``, in Lightning's order) and the
plugtron hook its code moves into, with a guard where the plugtron hook fires more often (``on_eval``
fires for ``valid`` and ``test``). Several Lightning hooks mapped to one plugtron hook run in the
order of this table, which is Lightning's call order. ``UNMAPPED``: hooks with no plugtron
equivalent, kept in the generated class as private, never-called methods. ``ARGUMENTS``: what each
Lightning argument becomes inside the moved code. ``TRAINER``: ``trainer.<attr>`` -> an expression on
plugtron's ``state`` (read the hook docs in ``plugtron.hookspecs``), or the reason there is none.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple


class Hook(NamedTuple):
    args: Tuple[str, ...]  # Lightning's positional arguments after self (their roles, see ARGUMENTS)
    plugtron: str
    guard: Optional[str] = None  # a condition under which the moved code does NOT run
    note: str = ""


_VALID, _TEST = 'split != "valid"', 'split != "test"'
_TP = ("trainer", "pl_module")

HOOKS: Dict[str, Hook] = {
    "setup": Hook(_TP + ("stage",), "configure_model", None,
                  "fires once on every rank before the model is built and before a resume; stage is 'fit'"),
    "on_fit_start": Hook(_TP, "on_train_start"),
    "on_train_start": Hook(_TP, "on_train_start"),
    "on_train_batch_start": Hook(_TP + ("batch", "batch_idx"), "on_step_start"),
    "on_before_optimizer_step": Hook(_TP + ("optimizer",), "on_before_optimizer_step", None,
                                     "once per step, gradients already reduced across data-parallel ranks"),
    "on_train_batch_end": Hook(_TP + ("outputs", "batch", "batch_idx"), "on_step", None,
                               "after the optimizer and scheduler steps; state.iteration counts the step just done"),
    "on_validation_start": Hook(_TP, "on_eval_start", _VALID),
    "on_validation_epoch_start": Hook(_TP, "on_eval_start", _VALID),
    "on_validation_epoch_end": Hook(_TP, "on_eval", _VALID, "metrics holds the evaluation's loss and ppl"),
    "on_validation_end": Hook(_TP, "on_eval", _VALID, "metrics holds the evaluation's loss and ppl"),
    "on_test_start": Hook(_TP, "on_eval_start", _TEST),
    "on_test_epoch_start": Hook(_TP, "on_eval_start", _TEST),
    "on_test_epoch_end": Hook(_TP, "on_eval", _TEST),
    "on_test_end": Hook(_TP, "on_eval", _TEST),
    "state_dict": Hook((), "on_save", None, "the returned state is saved per rank in every checkpoint"),
    "load_state_dict": Hook(("state_dict",), "on_load", "plugin_state is None",
                            "on resume; Lightning calls it only when a state was saved, hence the guard"),
    "on_train_end": Hook(_TP, "on_train_end"),
    "on_fit_end": Hook(_TP, "on_train_end"),
    "teardown": Hook(_TP + ("stage",), "on_train_end", None,
                     "after a normal end; a failing run calls on_exception instead"),
    "on_exception": Hook(_TP + ("exception",), "on_exception", None, "must not raise"),
}

_EPOCHS = "plugtron counts iterations, not epochs: check state.iteration in on_step"
_EVAL_BATCH = "plugtron has no per-batch evaluation hook: on_eval_start/on_eval fire around each evaluation"
UNMAPPED: Dict[str, str] = {
    "on_train_epoch_start": _EPOCHS,
    "on_train_epoch_end": _EPOCHS,
    "on_validation_batch_start": _EVAL_BATCH,
    "on_validation_batch_end": _EVAL_BATCH,
    "on_test_batch_start": _EVAL_BATCH,
    "on_test_batch_end": _EVAL_BATCH,
    "on_sanity_check_start": "plugtron runs no sanity validation",
    "on_sanity_check_end": "plugtron runs no sanity validation",
    "on_save_checkpoint": "plugtron saves what on_save returns (state_dict's code goes there); "
                          "extra files go into on_save's checkpoint_dir",
    "on_load_checkpoint": "on_load(state, checkpoint_dir, plugin_state) gets back what on_save returned",
    "on_before_backward": "Megatron runs backward per microbatch inside the step; the nearest hook is "
                          "on_before_optimizer_step (gradients reduced)",
    "on_after_backward": "Megatron runs backward per microbatch inside the step; the nearest hook is "
                         "on_before_optimizer_step (gradients reduced)",
    "on_before_zero_grad": "Megatron zeroes its gradient buffers inside the step",
    "on_predict_start": "plugtron does not predict during training (plugtron generate is a command)",
    "on_predict_end": "plugtron does not predict during training (plugtron generate is a command)",
    "on_predict_batch_start": "plugtron does not predict during training (plugtron generate is a command)",
    "on_predict_batch_end": "plugtron does not predict during training (plugtron generate is a command)",
    "on_predict_epoch_start": "plugtron does not predict during training (plugtron generate is a command)",
    "on_predict_epoch_end": "plugtron does not predict during training (plugtron generate is a command)",
}

# Lightning argument role -> (what it becomes, or None: no equivalent) and why. "{step}" is
# the hook-dependent index of the batch (see BATCH_IDX).
ARGUMENTS: Dict[str, Tuple[Optional[str], str]] = {
    "trainer": (None, "the Lightning Trainer has no plugtron equivalent: its counters are on state, its "
                      "settings on state.config"),
    "pl_module": (None, "the LightningModule has no plugtron equivalent: the Megatron model chunks are "
                        "state.model, the config state.config"),
    "stage": ('"fit"', "plugtron only trains"),
    "batch": (None, "plugtron hooks do not see the batch"),
    "batch_idx": ("{step}", "the step's 0-based index (Lightning's batch_idx within the single epoch)"),
    "outputs": (None, "Lightning's step outputs: on_step gets metrics (loss, grad_norm, lr, skipped); "
                      "outputs['loss'] is metrics.loss"),
    "optimizer": ("state.optimizer", "Megatron's optimizer"),
    "exception": ("exc", ""),
    "state_dict": ("plugin_state", "what on_save returned"),
    "extra": (None, "Lightning's extra hook arguments have no plugtron equivalent"),
}
BATCH_IDX = {"on_step_start": "state.iteration", "on_step": "(state.iteration - 1)"}

_LOGGING = "return the value from collect_metrics(state): every logger plugin gets it in on_log(state, log)"
_NONE = "no plugtron equivalent"
TRAINER: Dict[str, Tuple[Optional[str], str]] = {
    "global_step": ("state.iteration", ""),
    "max_steps": ("state.config.train.train_iters", ""),
    "is_global_zero": ("state.is_rank0", ""),
    "global_rank": ("state.rank", ""),
    "should_stop": ("state.should_stop", "to stop, trainer.should_stop = True becomes state.request_stop(...)"),
    "log_every_n_steps": ("state.config.logger.log_interval", ""),
    "val_check_interval": ("state.config.train.eval_interval", ""),
    "limit_val_batches": ("state.config.train.eval_iters", ""),
    "optimizers": ("[state.optimizer]", ""),
    "precision": ("state.config.mixed_precision", "a plugtron preset name, or None"),
    "strategy": (None, "Megatron's parallel state (megatron.core.parallel_state) replaces the strategy; "
                       "ranks: state.rank, state.dp_rank, state.dp_size"),
    "logger": (None, _LOGGING),
    "loggers": (None, _LOGGING),
    "callback_metrics": (None, "read the log record in on_log(state, log), or metrics in on_eval"),
    "logged_metrics": (None, "read the log record in on_log(state, log)"),
    "progress_bar_metrics": (None, "read the log record in on_log(state, log)"),
    "current_epoch": (None, _EPOCHS),
    "lightning_module": (None, ARGUMENTS["pl_module"][1]),
    "model": (None, ARGUMENTS["pl_module"][1]),
    "datamodule": (None, "plugtron hooks do not see the data"),
    "world_size": (None, "torch.distributed.get_world_size() (data-parallel: state.dp_size)"),
    "local_rank": (None, "read LOCAL_RANK from the environment (set by torchrun)"),
}
NO_TRAINER_ATTR = _NONE

# Calls with no equivalent, by the method name on self or on the LightningModule.
LOG_CALLS = {"log": _LOGGING, "log_dict": _LOGGING}

# Imports dropped from the generated module (Lightning and NeMo: the plugin must not need them); names
# they bound that the code still uses are reported. ``nemo.utils.logging`` becomes a standard-library logger.
DROPPED_IMPORTS = ("lightning", "pytorch_lightning", "lightning_fabric", "nemo")
NEMO_LOGGING = "nemo.utils"  # `from nemo.utils import logging`: kept as a standard-library logger

# Decorators on a hook: rank_zero_only becomes a guard, override (typing_extensions) is kept.
RANK_ZERO_ONLY = "rank_zero_only"
