"""Step-time overhead of plugtron's loop and hooks over a bare Megatron-Core loop.

One process, one model, one optimizer, one scheduler. Two variants take turns:

* **bare**: a loop written here - zero the grad buffers, Megatron's forward/backward schedule,
  ``optimizer.step()``, ``scheduler.step()`` - nothing else.
* **plugtron**: one iteration of ``Trainer.train``'s loop, through the very methods it calls:
  ``Trainer.train_step`` (``on_step_start``, the step with ``on_before_optimizer_step``, counters
  and FLOPs, ``StepMetrics``, ``on_step``, the log window's loss accumulation), ``maybe_log``
  (``collect_metrics`` + log line + ``on_log`` every ``log_interval``), ``maybe_eval`` (off here), ``maybe_save`` (no ``checkpoint.save`` here: the
  per-step async-save ``finalize`` only) and ``agree_stop`` (stop policies and the stop agreement),
  with plugtron's own built-in plugins enabled (never a third party's: the number must mean the
  same on every machine).

Fairness:

* Each variant has its own micro-batch iterator over the same dataset, both starting at sample 0, and
  both run the same number of steps per block, so block *r* of each variant trains on the very same
  micro-batches (on the same device: plugtron's through its ``OnDevice`` wrapper, as in the loop).
* Model, optimizer and scheduler are shared: both variants do identical numerical work (same shapes,
  same kernels); only the weights' values differ, which does not change the cost of a step.
* Blocks alternate bare/plugtron, then plugtron/bare (ABBA), after a warm-up of both, so drift and
  whatever one variant leaves behind (caches, allocator state) hit both equally.
* GC: the plugins' ``on_train_start`` runs once before timing; ``manual_gc`` then disables Python's
  automatic GC for the whole process - both variants run without automatic GC. Its per-step
  ``gc.collect()`` (``train.manual_gc_interval``; 0 by default) is charged to plugtron only.

Noise: other processes on the machine slow whole blocks, by tens of percent on a shared 2-core box.
Hence the defaults: blocks of one step (the two variants of a round run back to back, under the same
load), many rounds, and one torch thread (with two intra-op threads and another process on a core,
every parallel region waits for the descheduled thread: step times swing 3x and the ratio's IQR spans
0.5 .. 2.3; the Python-side overhead this benchmark looks for does not depend on the thread count).
It reports each variant's median step time, the plugtron/bare ratio of every round, its median with a
bootstrap 95% confidence interval and its interquartile range (IQR): an overhead is real when the
interval lies above 1.0; the IQR says how much single rounds scatter. Process CPU time is reported
too. Last, each piece of work only plugtron does is timed alone (min of repeats): an accounting of the
overhead that needs no two blocks to see the same load.

    python benchmarks/hook_overhead.py [--steps 1] [--rounds 200] [--threads 1]
    python benchmarks/hook_overhead.py --loggers         # only the logging plugins (below)
    python benchmarks/hook_overhead.py --profile 20      # cProfile 20 steps of each variant
    python benchmarks/hook_overhead.py --smoke           # a tiny model, 2 rounds: the code path only (tests)

Plugins: by default every built-in, enabled by name (``plugins.<name>.enabled``, each with its
section's defaults), except the W&B and MLflow backends (they need a project or experiment and write
to a service or database: their cost is that service's, not plugtron's), ``peft`` (it needs a
pretrained checkpoint and changes the model, not the loop), ``compile`` (it changes the model's speed, not the loop's), without CUDA the CUDA-only
profilers, and ``fault_tolerance`` unless started by ``ft_launcher`` (it needs its rank monitor); TensorBoard writes into a temporary directory. ``--loggers`` enables just the logging set of a
typical run instead - metrics file, throughput and memory monitors, TensorBoard - at the config's
``logger.log_interval`` (``--log-interval`` to change it).

Target: ratio <= 1.01 (all built-ins), <= 1.02 (``--loggers``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import statistics
import time
import warnings

warnings.filterwarnings("ignore")


# Logger backends that need a project/experiment and an external service or store (see the module doc).
EXTERNAL_BACKENDS = ("wandb", "mlflow")
NOT_TIMED = ("peft", "compile")  # they change the model both variants train, not the loop (peft also needs a pretrained checkpoint)
CUDA_ONLY = ("nsys_profiler", "memory_profiler")  # a config error without CUDA (named; tested elsewhere)
FT_LAUNCHER_ONLY = ("fault_tolerance",)  # needs the rank monitor of nvidia-resiliency-ext's ft_launcher
# --smoke: a tiny model and few steps, so a test can run every mode's code path in seconds
SMOKE = ["model.num_layers=1", "model.hidden_size=32", "model.ffn_hidden_size=64", "model.num_attention_heads=2",
         "model.seq_length=32", "train.micro_batch_size=2", "train.global_batch_size=4"]
LOGGERS = ("metrics_file", "throughput", "memory", "tensorboard")  # --loggers


def builtin_plugins(available) -> list:
    """Names of plugtron's own plugins among ``available`` (name -> entry point): those whose entry
    point lives in ``plugtron.plugins``, never a third party's (its hooks could stop or slow the run)."""
    return sorted(n for n, ep in available.items() if ep.value.startswith("plugtron.plugins.")
                  and n not in EXTERNAL_BACKENDS + NOT_TIMED)


def _quartiles(xs):
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def _median_ci(xs, level: float = 0.95, resamples: int = 2000):
    """Bootstrap confidence interval of the median of ``xs`` (fixed seed: reruns print the same
    interval for the same data)."""
    import random

    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
    lo = meds[int((1 - level) / 2 * resamples)]
    hi = meds[min(resamples - 1, int((1 + level) / 2 * resamples))]
    return lo, hi


def _per_call_us(fn, calls: int = 200, repeats: int = 5) -> float:
    """Microseconds per call, min over repeats (the least disturbed estimate on a shared machine)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def _plugtron_only_work(trainer, plog):
    """Time, one by one, the pieces of a plugtron step that the bare step does not have: an
    accounting of the overhead that does not depend on the two variants' blocks seeing the same
    load. Returns ``[(label, microseconds per training step)]``."""
    import copy

    import torch

    from megatron.core.pipeline_parallel import get_forward_backward_func

    from plugtron.data.batches import to_device
    from plugtron.training.metrics import StepMetrics, format_log
    from plugtron.training.step import ensure_train_mode, mean_loss

    cfg, state, hooks, model = trainer.cfg, trainer.state, trainer.hooks, trainer.state.model
    t = cfg.train
    n_micro = cfg.num_microbatches
    reduced = [{"lm loss": torch.tensor(2.0 + i)} for i in range(n_micro)]
    loss = mean_loss(reduced)
    grad_norm, lr = 1.0, state.scheduler.get_lr(state.optimizer.param_groups[0])
    metrics = StepMetrics(state.iteration, loss, grad_norm, lr, False, None)
    batch = next(trainer.data.train_iterators[0].it)
    scratch = copy.copy(trainer.log_window)  # accumulate into a copy: the real window's sums stay as they were
    sink = []

    def train_mode():
        for chunk in model:
            ensure_train_mode(chunk)

    def build_metrics():
        state_iteration = state.iteration + 1
        state.floating_point_operations_so_far + 1.0
        StepMetrics(iteration=state_iteration, loss=loss, grad_norm=None if grad_norm is None else float(grad_norm),
                    lr=state.scheduler.get_lr(state.optimizer.param_groups[0]), skipped=not True,
                    num_zeros_in_grad=None)

    def accumulate():
        sink.append(loss.detach())
        scratch.add(metrics)
        if len(sink) > 1000:
            sink.clear()
            scratch.loss_sum, scratch.loss_n = None, 0

    def log_line():
        scratch.add(metrics)
        rec = hooks.collect_metrics(state, scratch.flush())
        plog.info(format_log(rec, t.train_iters))
        hooks.on_log(state, rec)

    it, interval = state.iteration, cfg.logger.log_interval
    off = next(k for k in range(it + 1, it + 3) if k % interval and k != t.train_iters) if interval > 1 else None

    def log_check():  # the iteration is set off the log interval for the call, then restored
        state.iteration = off
        trainer.maybe_log()
        state.iteration = it

    log_check = log_check if off is not None else None  # log_interval 1: every step logs (below)
    stop, save = state.should_stop, state.should_save
    parts = [
        ("hooks.on_step_start", _per_call_us(lambda: hooks.on_step_start(state))),
        ("hooks.on_before_optimizer_step", _per_call_us(lambda: hooks.on_before_optimizer_step(state))),
        ("hooks.on_step (all plugins)", _per_call_us(lambda: hooks.on_step(state, metrics))),
        ("train_step: train-mode check per chunk", _per_call_us(train_mode)),
        ("train_step: get_forward_backward_func()", _per_call_us(get_forward_backward_func)),
        ("train_step: mean_loss over microbatches", _per_call_us(lambda: mean_loss(reduced, with_tokens=True))),
        (f"OnDevice: {n_micro} batches x to_device", n_micro * _per_call_us(lambda: to_device(batch))),
        ("counters, FLOPs + StepMetrics (float(grad_norm), lr lookup)", _per_call_us(build_metrics)),
        ("summary loss + log_window.add", _per_call_us(accumulate)),
        *([("Trainer.maybe_log on a step that does not log", _per_call_us(log_check))] if log_check else []),
        ("Trainer.maybe_eval (evaluation off)", _per_call_us(trainer.maybe_eval)),
        ("Trainer.maybe_save (no save: finalize(blocking=False))", _per_call_us(trainer.maybe_save)),
        ("Trainer.agree_stop (stop policies + agreement)", _per_call_us(trainer.agree_stop)),
        (f"log_window.flush + collect_metrics + log line + on_log, / log_interval {cfg.logger.log_interval}",
         _per_call_us(log_line, calls=20) / cfg.logger.log_interval),
    ]
    state.should_stop, state.should_save = stop, save
    return parts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1, help="steps per timed block")
    ap.add_argument("--rounds", type=int, default=200, help="rounds; each times one block of each variant")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps of each variant first")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="instead of timing, cProfile N steps of each variant and print where the time goes")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (0: torch's choice, as in a real run; 1, the default, is "
                         "far less sensitive to other processes on the cores)")
    ap.add_argument("--loggers", action="store_true",
                    help="enable only " + ", ".join(LOGGERS) + " (default: every built-in but " + ", ".join(EXTERNAL_BACKENDS) + ")")
    ap.add_argument("--log-interval", type=int, default=None, help="logger.log_interval (default: the config's)")
    ap.add_argument("--smoke", action="store_true", help="a tiny model, 2 rounds of 1 step, 1 warm-up step: "
                    "checks the code path, measures nothing")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rounds, args.steps, args.warmup = 2, 1, 1

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from plugtron.config import PluginSettings, load_config
    from plugtron.plugin_manager import PluginManager, discover
    from plugtron.training import Trainer
    from plugtron.training.step import forward_step

    steps_total = args.warmup + (args.profile or args.steps * args.rounds)
    # both variants step the one scheduler: size the run for both, so the lr stays on its schedule
    import tempfile

    tb_dir = tempfile.TemporaryDirectory(prefix="plugtron-bench-tb-")
    cfg = load_config(None, [f"train.train_iters={2 * steps_total + 1}", "train.eval_interval=null",
                             "scheduler.lr_warmup_iters=1", f"logger.tensorboard_dir={tb_dir.name}",
                             f"logger.metrics_dir={tb_dir.name}", *(SMOKE if args.smoke else []),
                             *([f"logger.log_interval={args.log_interval}"] if args.log_interval else [])])
    # plugtron's own built-ins only: a third-party package installed here must not change the number
    if args.loggers:  # the default-on plugins off, then exactly the logging set on
        cfg.logger.metrics_file = cfg.logger.log_throughput = cfg.logger.run_summary = False
        cfg.train.check_for_nan_in_loss_and_grad = False
    for name in (LOGGERS if args.loggers else builtin_plugins(discover())):
        if name in CUDA_ONLY and not torch.cuda.is_available():
            continue
        if name in FT_LAUNCHER_ONLY and not os.environ.get("FT_RANK_MONITOR_IPC_SOCKET"):
            continue
        cfg.plugins[name] = PluginSettings(enabled=True)
    # ddp_parity needs its interval; one no run here reaches, so its per-step cost is the check only
    if not args.loggers:
        cfg.train.check_weight_hash_across_dp_replicas_interval = 10**9
    # checkpoint.save is unset: no saves, as in a run without one
    pm = PluginManager()
    trainer = Trainer(cfg, plugin_manager=pm)  # validates, loads the plugins, builds model, optimizer and data
    state, t = trainer.state, cfg.train
    model, optimizer, scheduler = state.model, state.optimizer, state.scheduler

    # The loop logs through the "plugtron" logger at INFO on rank 0 (the CLI's setting): keep the
    # formatting and handler work, send the lines nowhere.
    plog = logging.getLogger("plugtron")
    devnull = open(os.devnull, "w")
    plog.handlers[:] = [logging.StreamHandler(devnull)]
    plog.setLevel(logging.INFO)
    plog.propagate = False

    # bare: its own iterator over the train split from sample 0, as the trainer's; the batch goes to
    # the device the plain way (on CPU it already is there).
    bare_batches = trainer.data.iterators(trainer.data.train, 0)[0]
    if torch.cuda.is_available():
        bare_it = ({k: (v.cuda(non_blocking=True) if torch.is_tensor(v) else v) for k, v in b.items()}
                   for b in bare_batches)
    else:
        bare_it = bare_batches
    fwd_bwd = get_forward_backward_func()

    def bare_step():
        for chunk in model:
            chunk.zero_grad_buffer()
        optimizer.zero_grad()
        fwd_bwd(
            forward_step_func=forward_step, data_iterator=bare_it, model=model, num_microbatches=cfg.num_microbatches,
            seq_length=cfg.model.seq_length, micro_batch_size=t.micro_batch_size,
            decoder_seq_length=cfg.model.seq_length, forward_only=False,
        )
        ok, _, _ = optimizer.step()
        if ok:
            scheduler.step(increment=t.global_batch_size)

    trainer.start()  # on_train_start; the log window and stop policies begin

    # The body of Trainer.train's while loop, method for method.
    def plugtron_step():
        trainer.train_step()
        trainer.maybe_log()
        trainer.maybe_eval()
        trainer.maybe_save()
        if trainer.agree_stop():
            raise RuntimeError("the benchmark's plugtron variant was asked to stop")

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # CPU-GPU sync point: a block ends when its kernels have run

    for _ in range(args.warmup):
        bare_step()
        plugtron_step()

    variants = {"bare": bare_step, "plugtron": plugtron_step}
    if args.profile:
        for name, fn in variants.items():
            prof = cProfile.Profile()
            sync()
            prof.enable()
            for _ in range(args.profile):
                fn()
            sync()
            prof.disable()
            out = io.StringIO()
            st = pstats.Stats(prof, stream=out)
            total = st.total_tt
            print(f"==== {name}: {args.profile} steps, {total / args.profile * 1000:.1f} ms/step under cProfile")
            st.sort_stats("tottime").print_stats(15)
            if name == "plugtron":
                # plugtron's own code and the hook machinery, by cumulative time
                st.sort_stats("cumulative").print_stats(r"plugtron|wt-bench|pluggy|plugins", 30)
            print(out.getvalue())
        trainer.hooks.on_train_end(state)
        trainer.close()
        return

    wall = {n: [] for n in variants}
    cpu = {n: [] for n in variants}
    for r in range(args.rounds):
        names = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for name in names:
            sync()
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                variants[name]()
            sync()
            wall[name].append((time.perf_counter() - w0) / args.steps)
            cpu[name].append((time.process_time() - c0) / args.steps)
    parts = _plugtron_only_work(trainer, plog)
    trainer.hooks.on_train_end(state)
    trainer.close()
    devnull.close()

    tb_dir.cleanup()
    print(f"plugins registered: {', '.join(pm.loaded) or 'none'}; log_interval {cfg.logger.log_interval}")
    print(f"{args.rounds} rounds x {args.steps} steps per variant (ABBA order), {args.warmup} warm-up steps each; "
          f"{cfg.num_microbatches} microbatches of {t.micro_batch_size} x {cfg.model.seq_length} tokens; "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    for label, data in (("wall", wall), ("cpu ", cpu)):
        ratios = [p / b for p, b in zip(data["plugtron"], data["bare"])]
        q1, med, q3 = _quartiles(ratios)
        bq = _quartiles(data["bare"])
        pq = _quartiles(data["plugtron"])
        print(f"[{label}] bare     step: median {bq[1] * 1000:8.2f} ms  (IQR {bq[0] * 1000:.2f} .. {bq[2] * 1000:.2f})")
        print(f"[{label}] plugtron step: median {pq[1] * 1000:8.2f} ms  (IQR {pq[0] * 1000:.2f} .. {pq[2] * 1000:.2f})")
        lo, hi = _median_ci(ratios)
        print(f"[{label}] ratio plugtron/bare per round: median {med:.4f}  95% CI of the median {lo:.4f} .. {hi:.4f}  "
              f"IQR {q1:.4f} .. {q3:.4f}")
        print(f"[{label}]     (ratio of the variants' medians {pq[1] / bq[1]:.4f}; plugtron slower in "
              f"{sum(x > 1 for x in ratios)}/{len(ratios)} rounds)")
    bare_med = statistics.median(wall["bare"])
    total = sum(us for _, us in parts)
    print("plugtron-only work per step, each piece timed alone (min of 5 x 200 calls; noise-robust):")
    for label, us in parts:
        print(f"    {us:9.1f} us  {label}")
    print(f"    {total:9.1f} us  total = {total / 1e6 / bare_med * 100:.3f} % of the bare step "
          f"-> expected ratio {1 + total / 1e6 / bare_med:.4f}")
    print(f"target: ratio <= {1.02 if args.loggers else 1.01}")


if __name__ == "__main__":
    main()
