"""Step-time overhead of plugtron's loop and hooks over a bare Megatron-Core loop.

Same tiny model, same data, same optimizer, in one process: a bare loop written here (Megatron's
forward/backward, optimizer.step, scheduler.step - nothing else) and plugtron's own ``train_step``
plus every hook call the loop makes per step, with every built-in plugin registered. The two are
timed in alternating blocks so drift (thermal, other load) hits both equally.

    python benchmarks/hook_overhead.py [--steps 30] [--rounds 5]

Target: ratio <= 1.01.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

warnings.filterwarnings("ignore")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30, help="steps per timed block")
    ap.add_argument("--rounds", type=int, default=5, help="alternating blocks per variant")
    args = ap.parse_args()

    from megatron.core.pipeline_parallel import get_forward_backward_func

    from plugtron.config import PluginSettings, load_config
    from plugtron.data import MicroBatchIterator, build_datasets, build_tokenizer
    from plugtron.plugin_manager import PluginManager, discover
    from plugtron.training import setup
    from plugtron.training.state import StepMetrics, TrainState
    from plugtron.training.step import forward_step, train_step

    total = args.steps * args.rounds * 2 + 10
    cfg = load_config(None, [f"train.train_iters={total}", "train.eval_interval=null", "scheduler.lr_warmup_iters=1"])
    # every installed plugin that can run here, enabled (GPU-only ones are skipped on CPU)
    import torch

    for name in discover():
        if name not in ("nsys_profiler",) or torch.cuda.is_available():
            cfg.plugins[name] = PluginSettings(enabled=True)
    cfg.validate()
    hooks = PluginManager().load(cfg)
    setup.init_distributed(cfg)
    setup.set_seeds(cfg)
    model = setup.build_model(cfg)
    optimizer, scheduler = setup.build_optimizer(cfg, model)
    tok = build_tokenizer(cfg.tokenizer)
    train_ds, _, _ = build_datasets(cfg, tok)
    t = cfg.train
    it = MicroBatchIterator(train_ds, t.micro_batch_size, t.global_batch_size)
    state = TrainState(config=cfg, model=model, optimizer=optimizer, scheduler=scheduler)
    hooks.on_train_start(state)

    def bare_step():
        for chunk in model:
            chunk.zero_grad_buffer()
        optimizer.zero_grad()
        losses = get_forward_backward_func()(
            forward_step_func=forward_step, data_iterator=it, model=model, num_microbatches=cfg.num_microbatches,
            seq_length=cfg.model.seq_length, micro_batch_size=t.micro_batch_size,
            decoder_seq_length=cfg.model.seq_length, forward_only=False,
        )
        ok, _, _ = optimizer.step()
        if ok:
            scheduler.step(increment=t.global_batch_size)
        return losses

    def plugtron_step():
        hooks.on_step_start(state)
        loss, ok, grad_norm, zeros = train_step(cfg, model, optimizer, scheduler, [it])
        state.iteration += 1
        m = StepMetrics(state.iteration, loss, grad_norm, scheduler.get_lr(optimizer.param_groups[0]), not ok, zeros)
        hooks.on_step(state, m)

    for _ in range(5):  # warm-up
        bare_step()
        plugtron_step()
    times = {"bare": [], "plugtron": []}
    for r in range(args.rounds):
        order = (("bare", bare_step), ("plugtron", plugtron_step))
        for name, fn in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name].append((time.perf_counter() - start) / args.steps)
    hooks.on_train_end(state)
    setup.destroy_distributed()
    bare, plug = statistics.median(times["bare"]), statistics.median(times["plugtron"])
    print(f"plugins registered: {', '.join(cfg.plugins)}")
    print(f"bare Megatron-Core step: {bare * 1000:.1f} ms (median of {args.rounds} blocks of {args.steps})")
    print(f"plugtron step + hooks:   {plug * 1000:.1f} ms")
    print(f"ratio plugtron/bare: {plug / bare:.4f}  (target <= 1.01)")


if __name__ == "__main__":
    main()
