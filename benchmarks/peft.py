"""LoRA against full fine-tuning of the same model, in one run: step time and memory.

A GPT (default ~25M parameters: 8 layers, hidden 512) is trained two steps and saved as the base;
then the same SFT-sized steps run twice from it, once fine-tuning every weight and once with LoRA
(``peft.dim``, all four linear layers). Reported per mode: median step time (after 2 warm-up
steps), the training state in memory (weights + gradient buffers + optimizer state, counted from
the tensors) and, on a GPU, the peak allocated memory. The ratios (LoRA / full) are printed last.

    python benchmarks/peft.py [--layers 8 --hidden 512 --steps 8 --dim 16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")


def state_bytes(trainer) -> int:
    """Weights, DDP gradient buffers and optimizer state of this rank, from the tensors."""
    import torch

    seen, total = set(), 0

    def add(t):
        nonlocal total
        if torch.is_tensor(t) and id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()

    for chunk in trainer.state.model:
        for p in chunk.parameters():
            add(p)
        for buf in getattr(chunk, "buffers", []):
            add(buf.grad_data)
    for opt in getattr(trainer.state.optimizer, "chained_optimizers", [trainer.state.optimizer]):
        inner = getattr(opt, "optimizer", opt)
        for st in inner.state.values():
            for v in st.values():
                add(v)
        for group in inner.param_groups:  # fp32 main params of a half-precision run
            for p in group["params"]:
                add(p)
    return total


def measure(overrides, steps):
    import torch

    from plugtron.config import load_config
    from plugtron.training.trainer import Trainer

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(load_config(None, overrides))
    try:
        trainer.start()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            float(trainer.train_step().loss)  # the step's end: a sync on a GPU
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
        return statistics.median(times[2:]), state_bytes(trainer), peak
    finally:
        trainer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--dim", type=int, default=16)
    a = ap.parse_args()
    from plugtron.config import load_config
    from plugtron.training import train

    model = [f"model.num_layers={a.layers}", f"model.hidden_size={a.hidden}", "model.num_attention_heads=8",
             "train.micro_batch_size=4", "train.global_batch_size=8", "train.eval_interval=null",
             "logger.log_interval=1000", "logger.metrics_file=false", "logger.run_summary=false",
             "logger.log_throughput=false", "scheduler.lr_warmup_iters=0"]
    with tempfile.TemporaryDirectory() as base:
        train(load_config(None, model + ["train.train_iters=2", f"checkpoint.save={base}"]))
        run = model + [f"train.train_iters={a.steps}", f"checkpoint.pretrained_checkpoint={base}"]
        full = measure(run, a.steps)
        lora = measure(run + [f"peft.dim={a.dim}"], a.steps)
    mib = 2**20
    for name, (step, state, peak) in (("full fine-tuning", full), (f"LoRA dim {a.dim}", lora)):
        print(f"{name:18s} step {step * 1e3:8.1f} ms | training state {state / mib:8.1f} MiB"
              + (f" | peak allocated {peak / mib:8.1f} MiB" if peak is not None else ""))
    print(f"LoRA / full: step time {lora[0] / full[0]:.2f}x, training state {lora[1] / full[1]:.3f}x"
          + (f", peak allocated {lora[2] / full[2]:.2f}x" if full[2] else ""))


if __name__ == "__main__":
    main()
