"""``Trainer``: one training run. The constructor builds it, ``train()`` runs the loop, and each
branch of the loop is a method (the hookspecs pseudocode names them; a test keeps the two in step).

``train(config)`` is the entry point the CLI and scripts call: ``Trainer(config).train()``.
Every method that runs a step, an evaluation or a save is collective: all ranks call it in order.
"""

from __future__ import annotations

import gc
import logging
import math
import os
from functools import partial
from typing import Any, Dict, List, Optional

from plugtron import distributed
from plugtron.checkpointing.manager import Checkpointer
from plugtron.checkpointing.paths import check_before_training as check_checkpoint_paths
from plugtron.config import preflight
from plugtron.training import setup
from plugtron.training.flops import num_floating_point_operations
from plugtron.training.interrupt import InterruptStop
from plugtron.training.metrics import LogWindow, StepMetrics, format_log, step_size
from plugtron.training.run_data import build_run_data
from plugtron.training.state import TrainState
from plugtron.training.stop import stop_policies

log = logging.getLogger("plugtron")


class Trainer:
    def __init__(self, cfg, plugin_manager=None, world_size: Optional[int] = None):
        """Validate ``cfg``, load the enabled plugins, start the process groups, then build model,
        optimizer, scheduler and checkpointer, resume (or load pretrained weights) and open the data
        at the resumed position. A failure after the process groups started fires ``on_exception``
        and tears them down again."""
        from plugtron.platform import machine
        from plugtron.plugin_manager import PluginManager

        cfg.validate(world_size)
        machine.check(cfg)
        self.cfg = cfg
        self.hooks = (plugin_manager or PluginManager()).load(cfg)
        setup.init_distributed(cfg)
        setup.apply_logging_level(cfg)
        self.state = TrainState(config=cfg)
        self.losses: List[Any] = []  # per step on the last pipeline stage, as 0-d tensors (no sync)
        self.eval_history: Dict[str, list] = {}
        try:
            self._build()
        except BaseException as exc:
            self.report_failure(exc)
            self.close()
            raise

    def _build(self) -> None:
        cfg, state, t = self.cfg, self.state, self.cfg.train
        preflight.check(cfg, checkpoint=False)  # tokenizer and data files: what config show checks too
        check_checkpoint_paths(cfg)  # before anything costly: a bad load/save/pretrained path fails in seconds
        self.hooks.configure_model(cfg, cfg.model)
        cfg.model.finalize()  # plugins may have changed the provider: re-run Megatron's checks
        setup.set_seeds(cfg)
        self.checkpointer = Checkpointer(cfg, self.hooks)
        chunks = setup.build_chunks(cfg)
        if cfg.peft is not None:  # the base weights first: adapters wrap (and DoRA measures) them
            self.checkpointer.load_pretrained(chunks)
        self.hooks.transform_model(cfg, chunks)  # before DDP and the optimizer see the parameters
        state.model = setup.wrap_chunks(cfg, chunks)
        state.optimizer, state.scheduler = setup.build_optimizer(cfg, state.model)
        self.before_optimizer_step = partial(self.hooks.on_before_optimizer_step, state)  # bound once, not per step
        self._load_checkpoint()  # before the data: the stream continues at the consumed samples
        self.data = build_run_data(cfg, state)
        self.flops_per_iter = num_floating_point_operations(cfg)
        self.eval_on = bool(t.eval_interval) and t.eval_iters > 0
        self.saved_at = state.iteration if cfg.checkpoint.load else None  # a resumed iteration is on disk already
        self.log_window: Optional[LogWindow] = None
        self.stop_policies: List[Any] = []
        self.stop: Optional[Dict[str, Any]] = None  # set by finish() when a stop was requested
        self.eval_records: Dict[str, List[Dict[str, Any]]] = {}
        self.interrupt: Optional[InterruptStop] = None
        if distributed.is_rank0():
            for note in cfg.notes:
                log.info(note)
            n = sum(p.numel() for c in state.model for p in c.parameters())
            log.info(
                f"model: {cfg.model.num_layers} layers, hidden {cfg.model.hidden_size}, {n / 1e6:.2f}M params on rank 0 | "
                f"world {cfg.world_size} = TP {cfg.model.tensor_model_parallel_size} x PP "
                f"{cfg.model.pipeline_model_parallel_size} x DP {cfg.data_parallel_size} | "
                f"{cfg.num_microbatches} microbatches of {cfg.train.micro_batch_size} | {step_size(cfg)}"
            )

    def _load_checkpoint(self) -> None:
        """Resume from ``checkpoint.load`` if it holds a checkpoint, else start from
        ``checkpoint.pretrained_checkpoint`` weights if given (Megatron Bridge's precedence). With
        ``peft`` the pretrained base is always loaded (before the transform) and a checkpoint holds
        the trainable parameters only."""
        ck = self.cfg.checkpoint
        resumed = self.checkpointer.resume(self.state) if ck.load else None
        self.resumed_from = resumed
        if resumed is None and ck.pretrained_checkpoint and self.cfg.peft is None:  # peft: loaded before the transform
            self.checkpointer.load_pretrained(self.state.model, self.state.optimizer)

    # ---- the loop ----------------------------------------------------------------------------------
    def train(self) -> Dict[str, Any]:
        """Run the loop to ``train.train_iters`` or an agreed stop, then ``finish()``. Returns
        ``summary()``; tears down the process groups, also on failure (after ``on_exception``)."""
        t = self.cfg.train
        if self.resumed_from and self.state.iteration >= t.train_iters and not t.skip_train and distributed.is_rank0():
            log.info(f"nothing to train: {self.resumed_from} is already at iteration {self.state.iteration} "
                     f"(train.train_iters={t.train_iters}); to train further, raise it, e.g. train.train_iters="
                     f"{2 * self.state.iteration} scheduler.override_opt_param_scheduler=true")
        try:
            self.start()
            while self.state.iteration < t.train_iters and not t.skip_train:
                self.train_step()
                self.maybe_log()
                self.maybe_eval()
                self.maybe_save()
                if self.agree_stop():
                    break
            self.finish()
        except BaseException as exc:
            self.report_failure(exc)
            raise
        finally:
            self.close()
        return self.summary()

    def start(self) -> None:
        """``on_train_start``; then the log window's and the time limit's clocks start."""
        self.hooks.on_train_start(self.state)
        self.log_window = LogWindow(self.cfg, self.state)
        self.stop_policies = stop_policies(self.cfg.train)
        if self.cfg.checkpoint.save:  # Ctrl-C / SIGTERM: save after this step and stop (plugtron.training.interrupt)
            self.interrupt = InterruptStop(self.cfg, distributed.is_rank0()).install()
            self.stop_policies.append(self.interrupt)

    def train_step(self) -> StepMetrics:
        """One iteration with its hooks: ``on_step_start``, forward/backward over the microbatches,
        ``on_before_optimizer_step``, optimizer and scheduler step, counters, ``on_step``."""
        from plugtron.training import step

        state = self.state
        self.hooks.on_step_start(state)
        lr = state.step_lr()  # before the step: the scheduler step after the update moves it on
        loss, ok, grad_norm, num_zeros, real_tokens = step.train_step(
            self.cfg, state.model, state.optimizer, state.scheduler, self.data.train_iterators,
            self.before_optimizer_step)
        metrics = state.record_step(loss, ok, grad_norm, num_zeros, self.flops_per_iter, lr=lr, real_tokens=real_tokens)
        if loss is not None:
            self.losses.append(loss.detach())
        self.hooks.on_step(state, metrics)
        self.log_window.add(metrics)
        return metrics

    def maybe_log(self) -> None:
        """Every ``logger.log_interval`` iterations and at the last one: the log record, the plugins'
        ``collect_metrics`` merged into it, the log line and ``on_log`` (collective over the pipeline
        group and a sync point, on log steps only). After the run's first step, if that is no log
        step, a console line only (a user sees the loss at once, not after ``log_interval``); no
        hook fires for it, so ``on_log`` and the metrics file keep their interval."""
        it, t = self.state.iteration, self.cfg.train
        if it % self.cfg.logger.log_interval == 0 or it == t.train_iters:
            rec = self.hooks.collect_metrics(self.state, self.log_window.flush(), "train")
            if distributed.is_rank0():
                log.info(format_log(rec, t.train_iters))
            self.hooks.on_log(self.state, rec)
        elif it == self.log_window.start_iter + 1:  # a console line only: on_log keeps its interval
            line = self.log_window.first_step_line()
            if distributed.is_rank0():
                log.info(line)

    def maybe_eval(self) -> None:
        """Every ``train.eval_interval`` iterations: the valid split (``eval_iters`` batches)."""
        if self.eval_on and self.data.valid is not None and self.state.iteration % self.cfg.train.eval_interval == 0:
            self.evaluate("valid")

    def maybe_save(self) -> None:
        """Every ``checkpoint.save_interval`` iterations a checkpoint; otherwise publish an async
        save whose write has finished (collective on every rank)."""
        ck = self.cfg.checkpoint
        if ck.save and ck.save_interval and self.state.iteration % ck.save_interval == 0:
            self.hooks.on_before_save(self.state)
            self.checkpointer.save(self.state)
            self.saved_at = self.state.iteration
        else:
            self.checkpointer.finalize(blocking=False)

    def agree_stop(self) -> bool:
        """Apply the stop policies (``plugtron.training.stop``), then all ranks agree to stop (and
        to save first) if any rank asked: one tiny all-reduce per step with several processes."""
        state = self.state
        for policy in self.stop_policies:
            policy.check(state)
        state.should_stop, state.should_save = distributed.any_rank(state.should_stop, state.should_save)
        if state.should_stop and state.stop_reason is None:  # another rank asked (a Ctrl-C may reach this
            # rank just after its own check: then that is the reason here too)
            own = self.interrupt.reason() if getattr(self, "interrupt", None) is not None else None
            state.stop_reason = own or "another rank asked to stop"
        return state.should_stop

    def finish(self) -> None:
        """After the loop: evaluation of the loaded model with ``skip_train``, the test split with
        ``dataset.do_test``, save-last, then ``on_train_end``."""
        cfg, state, t, ck = self.cfg, self.state, self.cfg.train, self.cfg.checkpoint
        if t.skip_train and self.eval_on and self.data.valid is not None:  # Megatron's --skip-train
            self.evaluate("valid")
        if getattr(cfg.dataset, "do_test", False) and self.data.test is not None and t.eval_iters > 0:
            self.evaluate("test")  # once, eval_iters batches (FinetuningDatasetConfig.do_test)
        # Save-last is always on (Megatron Bridge); a stop requested with save=False skips it.
        if ck.save and self.saved_at != state.iteration and (not state.should_stop or state.should_save):
            self.hooks.on_before_save(state)
            self.checkpointer.save(state)
            self.saved_at = state.iteration
        self.checkpointer.close()
        if state.should_stop:
            self.stop = self._stop_outcome()
            if distributed.is_rank0():
                saved = f"; checkpoint in {os.path.abspath(ck.save)}" if self.stop["saved"] else ""
                log.info(f"stopped at iteration {state.iteration}: {state.stop_reason}{saved}"
                         + (f" ({self.stop['note']})" if self.stop["note"] else ""))
        self.hooks.on_train_end(state)

    def _stop_outcome(self) -> Dict[str, Any]:
        """What a requested stop did: a requested save that could not happen says why."""
        state, saved = self.state, self.saved_at == self.state.iteration and bool(self.cfg.checkpoint.save)
        note = None
        if state.should_save and not saved:
            note = "a save was requested, but nothing was saved: checkpoint.save is not set"
        return {"reason": state.stop_reason, "save_requested": state.should_save, "saved": saved, "note": note}

    def evaluate(self, split: str) -> Dict[str, Any]:
        """``on_eval_start``, ``eval_iters`` batches of ``split``, ``on_eval``, then the evaluation's
        record: the plugins' ``collect_metrics(state, split)`` and ``on_eval_log`` (collective)."""
        from plugtron.training.step import evaluate

        cfg, state = self.cfg, self.state
        self.hooks.on_eval_start(state, split)
        dataset = self.data.valid if split == "valid" else self.data.test
        loss = evaluate(cfg, state.model, self.data.eval_iterators(dataset), cfg.train.eval_iters)
        metrics = {"loss": loss, "ppl": math.exp(min(loss, 30.0)), "iters": cfg.train.eval_iters}
        self.eval_history.setdefault(split, []).append((state.iteration, loss))
        if distributed.is_rank0():
            log.info(f"{split} at iter {state.iteration}: loss {loss:.4f} | ppl {metrics['ppl']:.2f}")
        self.hooks.on_eval(state, split, metrics)
        record = self.hooks.collect_metrics(state, {"iteration": state.iteration, **metrics}, split)
        if state.should_stop:  # decided in this evaluation (or earlier in this step): its record says so
            record["stop_reason"] = state.stop_reason
        self.eval_records.setdefault(split, []).append(record)
        self.hooks.on_eval_log(state, split, record)
        return metrics

    # ---- failure and teardown -------------------------------------------------------------------------
    def report_failure(self, exc: BaseException) -> None:
        """``on_exception`` on this rank; a plugin failing inside it is logged, never raised."""
        for _name, err in self.hooks.on_exception(self.state, exc):
            log.error(f"while handling the failure, {err}")

    def close(self) -> None:
        """Tear down Megatron's parallel state and the process group; the config lets go of the run."""
        if getattr(self, "interrupt", None) is not None:  # absent when the build failed
            self.interrupt.restore()
        setup.unwire(self.cfg)
        setup.destroy_distributed()

    def summary(self) -> Dict[str, Any]:
        """Losses per step (last pipeline stage; a sync point), eval history, counters, stop reason."""
        return {
            "losses": [float(x) for x in self.losses],
            "eval": self.eval_history,
            "iteration": self.state.iteration,
            "consumed_train_samples": self.state.consumed_train_samples,
            "stop_reason": self.state.stop_reason,
            "stop": self.stop,
            "eval_records": self.eval_records,
        }


def train(cfg, plugin_manager=None, world_size: Optional[int] = None) -> Dict[str, Any]:
    """Run training as configured. Returns a summary (losses per step on the last stage, eval
    history) for scripts and tests. Initializes and tears down the process groups."""
    summary = Trainer(cfg, plugin_manager, world_size).train()
    # The run's model, DDP buckets and optimizer reach its process groups through reference cycles;
    # collected now, the gloo groups' threads (3 each) end with the run instead of at some later gc.
    gc.collect()
    return summary
