"""The hooks a plugtron plugin may implement, grouped by the phase of a run in which they fire.

Where each hook fires in a run (``plugtron.training.trainer``: ``train(config)`` is
``Trainer(config).train()``; each ``Trainer.<method>`` below is a method of that name)::

    Trainer(config):
        config.validate();  machine check
        plugins = enabled plugins (train.manual_gc, ..., plugins.<name>.enabled)
        start process groups
        configure_model(config, provider)            # all ranks, before anything is built
        build model chunks, DDP, optimizer, scheduler
        if checkpoint.load holds a checkpoint:  resume ...; on_load(state, checkpoint_dir, plugin_state)
        elif checkpoint.pretrained_checkpoint:  load weights only (no hook: nothing of a run is resumed)
        build data iterators at state.consumed_train_samples
    Trainer.train():
      try:
        Trainer.start():  on_train_start(state)
        while state.iteration < train_iters and not train.skip_train:
            Trainer.train_step():
                on_step_start(state)
                forward/backward over num_microbatches; optimizer.step(); scheduler.step()
                state.iteration += 1
                on_step(state, metrics)              # loss, grad_norm, lr, skipped
            Trainer.maybe_log():   if iteration % log_interval == 0 or last:  on_log(state, log)
            Trainer.maybe_eval():  if iteration % eval_interval == 0:  Trainer.evaluate("valid")
            Trainer.maybe_save():  if iteration % save_interval == 0:
                                       on_before_save(state)
                                       save ...; on_save(state, checkpoint_dir) -> plugin_state;  publish
            Trainer.agree_stop():  stop policies (exit_interval, exit_duration_in_mins) may request a
                                   stop; all ranks agree if any asked (e.g. preemption):  break
        Trainer.finish():
            if train.skip_train:  Trainer.evaluate("valid")        # the loaded model
            if dataset.do_test:   Trainer.evaluate("test")
            if checkpoint.save and not saved at this iteration (and the stop allows):
                final save: on_before_save, then on_save
            on_train_end(state)
      except BaseException as exc:
        Trainer.report_failure(exc):  on_exception(state, exc);  raise   # also if Trainer(config) fails
      finally:
        Trainer.close():  tear down the process groups
      return Trainer.summary()
    Trainer.evaluate(split):  on_eval_start(state, split);  eval_iters batches;  on_eval(state, split, metrics)

Rules for every hook:
- A plugin implements a hook by defining a method with the hook's name (``@hookimpl`` is optional)
  and any subset of its arguments, by name. An unknown hook name or argument is a load error.
- Hooks fire on **every rank** unless the docstring says otherwise; anything collective inside a hook
  must therefore be entered by all ranks.
- Return values are ignored except where the docstring says what they mean.
- ``state`` is a :class:`plugtron.training.state.TrainState`: iteration, consumed samples, the config,
  model chunks, optimizer, scheduler; ``state.request_stop(save=...)`` asks the loop to stop after
  the current step (all ranks agree: the loop reduces the request across ranks).
"""

from __future__ import annotations

import pluggy

PROJECT = "plugtron"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---- setup -------------------------------------------------------------------------------------
@hookspec
def configure_model(config, provider) -> None:
    """Adjust the model provider before any model is built.

    Fires once per run on every rank, after ``config.validate()``, before parallel state is used to
    build model chunks. ``provider`` is ``config.model`` (a Megatron ``TransformerConfig``);
    change it in place (e.g. MoE token-drop settings). The loop re-runs Megatron's config checks
    afterwards. Return value ignored.
    """


@hookspec
def on_load(state, checkpoint_dir, plugin_state) -> None:
    """A checkpoint was loaded (resume, not ``pretrained_checkpoint``).

    Fires on every rank after model, optimizer, scheduler, RNG and data position are restored,
    before ``on_train_start``. ``checkpoint_dir`` is the ``iter_XXXXXXX`` directory;
    ``plugin_state`` is what *this* plugin returned from ``on_save`` on this rank (rank 0's when the
    world size changed; ``None`` if nothing was saved for it). Return value ignored.
    """


@hookspec
def on_train_start(state) -> None:
    """Everything is built (and resumed); the first step is next.

    Fires once on every rank. ``state.iteration`` is 0, or the resumed iteration.
    """


# ---- the step ------------------------------------------------------------------------------------
@hookspec
def on_step_start(state) -> None:
    """An iteration begins: fires on every rank before its forward/backward passes.

    ``state.iteration`` is the number of completed iterations (the step about to run is
    ``state.iteration + 1``). Cost: called every iteration; keep it cheap.
    """


@hookspec
def on_step(state, metrics) -> None:
    """An iteration ended: forward/backward, optimizer step and scheduler step are done.

    Fires on every rank. ``metrics`` is a :class:`plugtron.training.metrics.StepMetrics`:
    ``iteration``, ``loss`` (a 0-d tensor averaged over microbatches and data-parallel ranks, on the
    last pipeline stage; ``None`` on other stages; ``float(metrics.loss)`` is a CPU-GPU sync),
    ``grad_norm`` (float or None), ``lr`` (float), ``skipped`` (bool: the optimizer skipped the
    update, e.g. fp16 overflow), ``num_zeros_in_grad``. Return value ignored.
    """


@hookspec
def on_log(state, log) -> None:
    """Every ``logger.log_interval`` iterations, after the loop assembled the log line.

    Fires on every rank with the same ``log`` dict: ``iteration``, ``loss`` (mean over the interval),
    ``lr``, ``grad_norm``, ``tokens_per_sec``, ``step_time_s``, ``elapsed_s``, ``eta_s``,
    ``skipped_iters``. Return value ignored. (Loggers such as TensorBoard/W&B are on_log plugins.)
    """


# ---- evaluation ------------------------------------------------------------------------------------
@hookspec
def on_eval_start(state, split) -> None:
    """Evaluation is about to run on ``split`` (``"valid"`` or ``"test"``). Every rank."""


@hookspec
def on_eval(state, split, metrics) -> None:
    """Evaluation on ``split`` finished. Every rank.

    ``metrics``: ``{"loss": float, "ppl": float, "iters": int}`` (loss averaged over ``eval_iters``
    global batches and data-parallel ranks, identical on every rank). Return value ignored.
    """


# ---- checkpoints -----------------------------------------------------------------------------------
@hookspec
def on_before_save(state) -> None:
    """A checkpoint of ``state.iteration`` is about to be written: nothing has been handed to the writer.

    Fires on every rank, before each save (interval saves and the final save). Make the model and
    optimizer complete for saving: e.g. with ``ddp.overlap_param_gather`` the updated weights are
    all-gathered lazily in the next forward pass, so the comm_overlap plugin forces that gather here
    (as Megatron-LM does before its saves). Anything collective must be entered by all ranks, which
    all call this hook. Return value ignored.
    """


@hookspec
def on_save(state, checkpoint_dir):
    """A checkpoint of ``state.iteration`` is being written into ``checkpoint_dir``.

    Fires on every rank, after the model/optimizer data was handed to the writer and before the
    checkpoint is published: ``checkpoint_dir`` is the ``iter_XXXXXXX.staging`` directory, and files a
    plugin writes there are published (and verified on load) with the checkpoint. Return this
    plugin's state to save - plain data and tensors, loadable with ``torch.load(weights_only=True)``
    - or ``None`` for nothing. Each rank's states go to ``plugins/rank_XXXXX.pt`` under the plugin's
    name and come back to its ``on_load``. A plugin without state pays nothing.
    """


# ---- end of run ----------------------------------------------------------------------------------
@hookspec
def on_train_end(state) -> None:
    """Training finished normally or stopped on request (after the final save). Every rank."""


@hookspec
def on_exception(state, exc) -> None:
    """The loop is failing with ``exc`` (including KeyboardInterrupt); fires on the ranks that raised,
    before the exception propagates. Must not raise; a plugin error here is logged, not raised."""
