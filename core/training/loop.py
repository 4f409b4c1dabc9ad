"""``train(config)``: the whole run, with every hook in place (see the pseudocode in hookspecs)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist

from plugtron.checkpointing.manager import Checkpointer
from plugtron.checkpointing.paths import check_before_training as check_checkpoint_paths
from plugtron.training.flops import num_floating_point_operations
from plugtron.training.state import StepMetrics, TrainState

log = logging.getLogger("plugtron")


def _rank0() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _build_data(cfg, state: TrainState):
    """Tokenizer, datasets and one micro-batch iterator per model chunk (virtual pipeline stages
    each pull their own copy of the same stream)."""
    from megatron.core import parallel_state as ps

    from plugtron.data import MicroBatchIterator, build_tokenizer
    from plugtron.training.model_kind import kind_for
    from plugtron.training.step import _OnDevice

    kind = kind_for(cfg.model)  # GPT or T5 samples and batches
    tokenizer = build_tokenizer(cfg.tokenizer)
    train_ds, valid_ds, test_ds = kind.build_datasets(cfg, tokenizer)
    dp_rank, dp_size = ps.get_data_parallel_rank(), ps.get_data_parallel_world_size()
    t = cfg.train

    def iterators(ds, consumed: int) -> List[Any]:
        return [
            MicroBatchIterator(ds, t.micro_batch_size, t.global_batch_size, dp_rank, dp_size,
                               consumed_samples=consumed, collate_fn=kind.collate)
            for _ in state.model
        ]

    train_its = iterators(train_ds, state.consumed_train_samples)
    return tokenizer, train_its, [_OnDevice(i) for i in train_its], valid_ds, test_ds, iterators


def _stop_agreed(state: TrainState) -> bool:
    """All ranks agree to stop if any asked (collective: one tiny all-reduce per step when more
    than one process runs)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return state.should_stop
    flags = torch.tensor([int(state.should_stop), int(state.should_save)], dtype=torch.int32)
    if torch.cuda.is_available():
        flags = flags.cuda()
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    state.should_stop, state.should_save = bool(flags[0]), bool(flags[1])
    return state.should_stop


class _Logger:
    """Accumulates loss on device between log lines (no per-step sync) and formats the line."""

    def __init__(self, cfg, state: TrainState):
        self.cfg, self.state = cfg, state
        self.start = self.last = time.perf_counter()
        self.start_iter = self.last_iter = state.iteration
        self.loss_sum: Optional[torch.Tensor] = None
        self.loss_n = 0
        self.grad_norm = None

    def elapsed_min(self) -> float:
        return (time.perf_counter() - self.start) / 60.0

    def add(self, metrics: StepMetrics) -> None:
        if metrics.loss is not None:
            self.loss_sum = metrics.loss.detach() if self.loss_sum is None else self.loss_sum + metrics.loss.detach()
            self.loss_n += 1
        self.grad_norm = metrics.grad_norm

    def flush(self) -> Dict[str, Any]:
        from plugtron.training.step import broadcast_from_last_stage

        now = time.perf_counter()
        mean = (self.loss_sum / self.loss_n).float().cpu() if self.loss_n else torch.tensor(float("nan"))
        loss = float(broadcast_from_last_stage(mean.reshape(1).double())[0])  # sync point, log steps only
        steps = self.state.iteration - self.last_iter
        step_time = (now - self.last) / max(steps, 1)
        done = self.state.iteration - self.start_iter
        t = self.cfg.train
        rec = {
            "iteration": self.state.iteration,
            "loss": loss,
            "lr": self.state.scheduler.get_lr(self.state.optimizer.param_groups[0]),
            "grad_norm": None if self.grad_norm is None else float(self.grad_norm),
            "tokens_per_sec": t.global_batch_size * self.cfg.model.seq_length / step_time if steps else 0.0,
            "step_time_s": step_time,
            "elapsed_s": now - self.start,
            "eta_s": (now - self.start) / max(done, 1) * (t.train_iters - self.state.iteration),
            "skipped_iters": self.state.skipped_train_iterations,
        }
        self.last, self.last_iter, self.loss_sum, self.loss_n = now, self.state.iteration, None, 0
        return rec


def format_log(rec: Dict[str, Any], train_iters: int) -> str:
    gn = "n/a" if rec["grad_norm"] is None else f"{rec['grad_norm']:.3f}"
    return (
        f"iter {rec['iteration']:>6}/{train_iters} | loss {rec['loss']:.4f} | lr {rec['lr']:.3e} | "
        f"grad_norm {gn} | {rec['tokens_per_sec']:,.0f} tok/s | {rec['step_time_s'] * 1000:.0f} ms/step | "
        f"elapsed {rec['elapsed_s']:.0f}s | eta {rec['eta_s']:.0f}s"
    )


def _run_eval(cfg, state, hooks, make_iterators, dataset, split: str, history: Dict[str, list]) -> None:
    from plugtron.training.step import _OnDevice, evaluate

    hooks.on_eval_start(state, split)
    its = [_OnDevice(i) for i in make_iterators(dataset, 0)]  # same window every time: comparable
    loss = evaluate(cfg, state.model, its, cfg.train.eval_iters)
    metrics = {"loss": loss, "ppl": math.exp(min(loss, 30.0)), "iters": cfg.train.eval_iters}
    history.setdefault(split, []).append((state.iteration, loss))
    if _rank0():
        log.info(f"{split} at iter {state.iteration}: loss {loss:.4f} | ppl {metrics['ppl']:.2f}")
    hooks.on_eval(state, split, metrics)


def _load(cfg, ckptr, state: TrainState) -> None:
    """Resume from ``checkpoint.load`` if it holds a checkpoint, else start from
    ``checkpoint.pretrained_checkpoint`` weights if given (Megatron Bridge's precedence)."""
    ck = cfg.checkpoint
    resumed = ckptr.resume(state) if ck.load else None
    if resumed is None and ck.pretrained_checkpoint:
        ckptr.load_pretrained(state)


def train(cfg, plugin_manager=None, world_size: Optional[int] = None) -> Dict[str, Any]:
    """Run training as configured. Returns a summary (losses per step on the last stage, eval
    history) for scripts and tests. Initializes and tears down the process groups."""
    from plugtron import machine
    from plugtron.plugin_manager import PluginManager
    from plugtron.training import setup
    from plugtron.training.step import train_step

    cfg.validate(world_size)
    machine.check(cfg)
    hooks = (plugin_manager or PluginManager()).load(cfg)
    setup.init_distributed(cfg)
    state = TrainState(config=cfg)
    summary: Dict[str, Any] = {"losses": [], "eval": {}}
    try:
        check_checkpoint_paths(cfg)  # before anything costly: a bad load/save path fails in seconds
        hooks.configure_model(cfg, cfg.model)
        cfg.model.finalize()  # plugins may have changed the provider: re-run Megatron's checks
        setup.set_seeds(cfg)
        state.model = setup.build_model(cfg)
        state.optimizer, state.scheduler = setup.build_optimizer(cfg, state.model)
        ckptr = Checkpointer(cfg, hooks)
        _load(cfg, ckptr, state)  # before the data: the stream continues at the consumed samples
        tokenizer, raw_its, train_its, valid_ds, test_ds, make_its = _build_data(cfg, state)
        if _rank0():
            n = sum(p.numel() for c in state.model for p in c.parameters())
            log.info(
                f"model: {cfg.model.num_layers} layers, hidden {cfg.model.hidden_size}, {n / 1e6:.2f}M params on rank 0 | "
                f"world {cfg.world_size} = TP {cfg.model.tensor_model_parallel_size} x PP "
                f"{cfg.model.pipeline_model_parallel_size} x DP {cfg.data_parallel_size} | "
                f"{cfg.num_microbatches} microbatches of {cfg.train.micro_batch_size}"
            )
        hooks.on_train_start(state)
        logger = _Logger(cfg, state)
        t, ck = cfg.train, cfg.checkpoint
        eval_on = bool(t.eval_interval) and t.eval_iters > 0
        flops_per_iter = num_floating_point_operations(cfg)
        saved_at = state.iteration if ck.load else None  # a resumed iteration is on disk already
        while state.iteration < t.train_iters and not t.skip_train:
            hooks.on_step_start(state)
            loss, ok, grad_norm, num_zeros = train_step(cfg, state.model, state.optimizer, state.scheduler, train_its)
            metrics = state.record_step(loss, ok, grad_norm, num_zeros, flops_per_iter)
            if loss is not None:
                summary["losses"].append(loss.detach())
            hooks.on_step(state, metrics)
            logger.add(metrics)
            if state.iteration % cfg.logger.log_interval == 0 or state.iteration == t.train_iters:
                rec = logger.flush()
                if _rank0():
                    log.info(format_log(rec, t.train_iters))
                hooks.on_log(state, rec)
            if eval_on and valid_ds is not None and state.iteration % t.eval_interval == 0:
                _run_eval(cfg, state, hooks, make_its, valid_ds, "valid", summary["eval"])
            if ck.save and ck.save_interval and state.iteration % ck.save_interval == 0:
                ckptr.save(state)
                saved_at = state.iteration
            else:
                ckptr.finalize(blocking=False)  # publish a finished async save (collective)
            if t.exit_interval and state.iteration % t.exit_interval == 0:
                state.request_stop(f"exit_interval {t.exit_interval} reached")
            if t.exit_duration_in_mins and logger.elapsed_min() >= t.exit_duration_in_mins:
                state.request_stop(f"exit_duration_in_mins {t.exit_duration_in_mins} reached")
            if _stop_agreed(state):
                break
        if t.skip_train and eval_on and valid_ds is not None:  # Megatron's --skip-train: evaluate the loaded model
            _run_eval(cfg, state, hooks, make_its, valid_ds, "valid", summary["eval"])
        if getattr(cfg.dataset, "do_test", False) and test_ds is not None and t.eval_iters > 0:
            # The test split once, at the end, eval_iters batches (FinetuningDatasetConfig.do_test).
            _run_eval(cfg, state, hooks, make_its, test_ds, "test", summary["eval"])
        # Save-last is always on (Megatron Bridge); a stop requested with save=False skips it.
        if ck.save and saved_at != state.iteration and (not state.should_stop or state.should_save):
            ckptr.save(state)
        ckptr.close()
        if state.stop_reason and _rank0():
            log.info(f"stopped at iteration {state.iteration}: {state.stop_reason}")
        hooks.on_train_end(state)
    except BaseException as exc:
        failures = hooks.on_exception(state, exc)
        for name, err in failures:
            log.error(f"while handling the failure, {err}")
        raise
    finally:
        setup.destroy_distributed()
    summary["losses"] = [float(x) for x in summary["losses"]]
    summary["iteration"] = state.iteration
    summary["consumed_train_samples"] = state.consumed_train_samples
    summary["stop_reason"] = state.stop_reason
    return summary
