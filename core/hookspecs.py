"""The hooks a plugtron plugin may implement, grouped by the phase of a run in which they fire.

Where each hook fires in a run (``plugtron.training.trainer``: ``train(config)`` is
``Trainer(config).train()``; each ``Trainer.<method>`` below is a method of that name)::

    Trainer(config):
        config.validate();  machine check
        plugins = enabled plugins (train.manual_gc, ..., plugins.<name>.enabled)
        start process groups
        configure_model(config, provider)            # all ranks, before anything is built
        build model chunks
        if peft:  load checkpoint.pretrained_checkpoint weights into the chunks (the base model)
        transform_model(config, model)               # bare chunks, before precision/DDP wrapping
        precision wrapper, DDP, optimizer, scheduler (they see the transformed chunks)
        if checkpoint.load holds a checkpoint:  resume ...; on_load(state, checkpoint_dir, plugin_state)
        elif checkpoint.pretrained_checkpoint and not peft:  load weights only (no hook: nothing of a
                                                 run is resumed)
        build data iterators at state.consumed_train_samples
    Trainer.train():
      try:
        Trainer.start():  on_train_start(state)
        while state.iteration < train_iters and not train.skip_train:
            Trainer.train_step():
                on_step_start(state)
                forward/backward over num_microbatches (gradients reduced across data-parallel ranks)
                on_before_optimizer_step(state)      # gradients available, weights not yet updated
                optimizer.step(); scheduler.step()
                state.iteration += 1
                on_step(state, metrics)              # loss, grad_norm, lr, skipped
            Trainer.maybe_log():   if iteration % log_interval == 0 or last:
                                       log = the loop's record + collect_metrics(state, "train") of each plugin
                                       on_log(state, log)
                                   elif the run's first step: a console line (loss, ETA); no hook
            Trainer.maybe_eval():  if iteration % eval_interval == 0:  Trainer.evaluate("valid")
            Trainer.maybe_save():  if iteration % save_interval == 0:
                                       on_before_save(state)
                                       save ...; on_save(state, checkpoint_dir) -> plugin_state;  publish
                                       on_checkpoint_published(state, checkpoint_dir)
                                       (async_save: after a later step, once the write is done)
            Trainer.agree_stop():  stop policies (exit_interval, exit_duration_in_mins) may request a
                                   stop; all ranks agree if any asked (e.g. preemption):  break
        Trainer.finish():
            if train.skip_train:  Trainer.evaluate("valid")        # the loaded model
            if dataset.do_test:   Trainer.evaluate("test")
            if checkpoint.save and not saved at this iteration (and the stop allows): final save:
                on_before_save, then on_save
            async saves still in flight are published -> on_checkpoint_published
            on_train_end(state)
      except BaseException as exc:
        Trainer.report_failure(exc):  on_exception(state, exc);  raise   # also if Trainer(config) fails
      finally:
        Trainer.close():  tear down the process groups
      return Trainer.summary()
    Trainer.evaluate(split):  on_eval_start(state, split);  eval_iters batches
                              on_eval(state, split, metrics)          # react, decide, request_stop
                              log = the loop's record + collect_metrics(state, split) of each plugin
                                    that takes `split` (+ stop_reason if a stop was requested)
                              on_eval_log(state, split, log)          # loggers write the record

Rules for every hook:
- A plugin implements a hook by defining a method with the hook's name (``@hookimpl`` is optional)
  and any subset of its arguments, by name. An unknown hook name or argument is a load error.
- Hooks fire on **every rank** unless the docstring says otherwise; anything collective inside a hook
  must therefore be entered by all ranks.
- Return values are ignored except where the docstring says what they mean.
- ``state`` is a :class:`plugtron.training.state.TrainState`: iteration, consumed samples, the config,
  model chunks, optimizer, scheduler; ``state.request_stop("why", save=True)`` asks the loop to stop
  after the current step (all ranks agree: the loop reduces the request across ranks). Rank helpers:
  ``state.is_rank0``, ``state.is_last_stage``, ``state.dp_rank``, ``state.dp_size``.

Versioning: these specs are part of ``plugtron.PLUGIN_API`` (semantic versioning). From plugtron's
plugin API 1.0.0 on, changing a hook's signature (an argument renamed or removed, a changed meaning
of a return value) or removing a hook bumps the major version; adding a hook or an argument bumps
the minor. A package declares the range it supports (``plugtron.api`` entry point, see
``plugtron.api_check``) and is refused, before anything is built, by a plugtron outside it.

Call order, when several plugins implement a hook (pluggy's rules):
- The plugin registered **last is called first**. Plugins are registered in enabling order: built-in
  toggles in the order of their config fields, then ``plugins.<name>`` in config order. For a value
  that several plugins set in turn, the one called last - the first enabled - wins; but two plugins
  setting one model field to different values in ``configure_model`` is an error, not a race.
- ``@hookimpl(tryfirst=True)`` / ``@hookimpl(trylast=True)`` move an implementation to the front /
  back of that order, on every hook.
- ``@hookimpl(wrapper=True)`` (a generator: code before ``yield`` runs before the other
  implementations, the ``yield`` returns their result) and the older ``hookwrapper=True`` are
  honoured on every hook except ``configure_model``, ``on_save``, ``on_load``, ``collect_metrics``
  and ``on_exception``: plugtron calls those once per plugin (per-plugin results and attribution),
  and a wrapper there is a load error.
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
def transform_model(config, model) -> None:
    """Change the built model chunks in place before anything wraps them (Megatron Bridge's pre-wrap
    hook): add modules, freeze parameters (``requires_grad=False``).

    Fires once per run on every rank. ``model`` is the list of this rank's bare Megatron model chunks
    (one per virtual pipeline stage), on the CPU, in ``model.params_dtype``; with a ``peft`` section the
    pretrained weights are already in them. The precision wrapper, DDP and the optimizer are built
    afterwards from what the chunks then hold: a frozen parameter gets no gradient buffer and no
    optimizer state. Parameters a plugin adds must carry Megatron's tensor-parallel attributes (build
    them from Megatron's parallel layers). Return value ignored.
    """


@hookspec
def on_load(state, checkpoint_dir, plugin_state) -> None:
    """A checkpoint was loaded (resume, not ``pretrained_checkpoint``).

    Fires on every rank after model, optimizer, scheduler, RNG and data position are restored,
    before ``on_train_start``. ``checkpoint_dir`` is the ``iter_XXXXXXX`` directory;
    ``plugin_state`` is what *this* plugin returned from ``on_save`` on this rank (rank 0's when the
    world size changed; ``None`` if nothing was saved for it). States saved by plugins that are not
    enabled now are skipped with one log line. Return value ignored.
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
    ``grad_norm`` (float or None), ``lr`` (float: the learning rate this step's update used; with
    warmup from 0 the first step's is 0), ``skipped`` (bool: the optimizer skipped the
    update, e.g. fp16 overflow), ``num_zeros_in_grad``. Return value ignored.
    """


@hookspec
def on_before_optimizer_step(state) -> None:
    """Gradients are computed and reduced across data-parallel ranks; the optimizer step is next.

    Fires on every rank, every iteration, after the forward/backward passes of all microbatches and
    before ``optimizer.step()`` (which unscales, clips and applies them). The gradients are in each
    parameter's ``main_grad`` (Megatron's DDP buffers) of ``state.model`` chunks: gradient statistics,
    clipping experiments. ``state.iteration`` is still the number of completed iterations.
    Cost: called every iteration; anything reading gradients is a pass over them (and ``float()``
    on a CUDA tensor is a CPU-GPU sync). Return value ignored.
    """


@hookspec
def collect_metrics(state, split):
    """Contribute metrics to a record: return a dict (or ``None``).

    Training log record (``split == "train"``): fires on every rank every ``logger.log_interval``
    iterations, just before ``on_log``. Evaluation record (``split`` is ``"valid"`` or ``"test"``):
    fires after ``on_eval`` of that evaluation - so a value decided there (a best loss, a counter, a
    stop) is already in it - and just before ``on_eval_log``; only implementations that take the
    ``split`` argument are asked for evaluation records (``collect_metrics(self, state)`` keeps
    contributing to training records only). The dicts are merged into the record, so every logger
    plugin sees every plugin's metrics. Keys must be new: a key the loop or another plugin already set
    is an error naming both. Values should be plain numbers (loggers expect them). Called once per
    plugin (not a wrapper).
    """


@hookspec
def on_log(state, log) -> None:
    """Every ``logger.log_interval`` iterations, after the loop assembled the log line.

    Fires on every rank with the same ``log`` dict: ``iteration``, ``loss`` (mean over the interval),
    ``lr`` (the one the interval's last step used), ``grad_norm``, ``tokens_per_sec`` (real tokens: SFT
    padding not counted), ``tokens`` and ``padding_tokens`` (the interval's), ``step_time_s``, ``elapsed_s``, ``eta_s``,
    ``skipped_iters``. Return value ignored. (Loggers such as TensorBoard/W&B are on_log plugins.)
    """


# ---- evaluation ------------------------------------------------------------------------------------
@hookspec
def on_eval_start(state, split) -> None:
    """Evaluation is about to run on ``split`` (``"valid"`` or ``"test"``). Every rank."""


@hookspec
def on_eval(state, split, metrics) -> None:
    """Evaluation on ``split`` finished: react to it here (track the best loss, ``state.request_stop``).
    Every rank.

    ``state.iteration`` is the number of completed training iterations: the evaluation of
    ``train.eval_interval=2`` fires at 2, 4, ... after that step (``on_step`` of the same iteration
    came first). ``metrics``: ``{"loss": float, "ppl": float, "iters": int}`` (loss averaged over
    ``eval_iters`` global batches and data-parallel ranks, identical on every rank). Plugins add keys
    to the evaluation's record with ``collect_metrics(state, split)``, which fires next; loggers write
    the complete record in ``on_eval_log``. Return value ignored.
    """


@hookspec
def on_eval_log(state, split, log) -> None:
    """The complete record of an evaluation on ``split``, for loggers (the ``on_log`` of evaluations).

    Fires on every rank after ``on_eval`` and ``collect_metrics(state, split)``: ``log`` holds
    ``iteration``, ``loss``, ``ppl``, ``iters``, every plugin's contributed keys and, if a stop was
    requested on this rank by then (e.g. in ``on_eval``), ``stop_reason``. Return value ignored.
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
    - or ``None`` for nothing. The state is checked on the spot (a weights-only round trip in
    memory): anything else (a ``set``, an object) is an error naming the plugin, before anything is
    published. Each rank's state goes to ``plugins/<name>/rank_XXXXX.pt`` and comes back to this
    plugin's ``on_load``. A plugin without state pays nothing. Not a wrapper (see the module doc).
    """


@hookspec
def on_checkpoint_published(state, checkpoint_dir) -> None:
    """A checkpoint is complete and visible: ``checkpoint_dir`` is its final ``iter_XXXXXXX``
    directory, the tracker points at it, retention has run. Trigger evaluation, conversion, upload.

    Fires on every rank, once per checkpoint. Synchronous saves publish at once (``state.iteration``
    is the checkpoint's); with ``checkpoint.async_save`` the write finishes in the background and the
    hook fires when it is published - after a later step, at the next save or at the end of training -
    so ``state.iteration`` may be later than the checkpoint's (read the iteration from
    ``checkpoint_dir``). Return value ignored.
    """


# ---- end of run ----------------------------------------------------------------------------------
@hookspec
def on_train_end(state) -> None:
    """Training finished normally or stopped on request (after the final save and its
    ``on_checkpoint_published``). Every rank."""


@hookspec
def on_exception(state, exc) -> None:
    """The loop is failing with ``exc`` (including KeyboardInterrupt); fires on the ranks that raised,
    before the exception propagates. Must not raise; a plugin error here is logged, not raised."""
