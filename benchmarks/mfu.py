"""Model FLOPs utilization (MFU) of plugtron training a ~1B Llama on one GPU.

Trains the ``llama32_1b`` provider (Llama 3.2 1B: 16 layers, hidden 2048, FFN 8192, 32 heads, 8 KV
groups, vocab 128256, tied embeddings) in bf16 on mock data with plugtron's own training code
(``setup.build_model`` / ``build_optimizer`` / ``step.train_step``: Megatron's DDP, optimizer with
fp32 main params and forward/backward schedule) and prints tokens/s, model TFLOP/s (Megatron's
formula: ``plugtron.training.flops``) and MFU against the GPU's dense bf16 peak from ``plugtron.training.flops.PEAK_BF16``.

    python benchmarks/mfu.py                        # 50 timed steps, seq 2048, micro 4, global 16
    python benchmarks/mfu.py --steps 20 --seq-length 4096 --micro-batch-size 2 --layer-spec local
    python benchmarks/mfu.py --tokens-per-step 131072   # global batch = tokens / seq length
    python benchmarks/mfu.py --fusions                  # + Megatron's torch.compile'd SwiGLU and cross entropy

Layer spec: ``te`` (Transformer Engine), ``local`` (Megatron-Core's own modules; on CUDA plugtron
computes their attention with torch's SDPA flash kernels) or ``auto`` (TE when importable, else local
with a printed note). Timing: ``--warmup`` untimed steps first (allocator, kernel autotuning), then
every step is timed to a ``torch.cuda.synchronize()``; the report uses the median step.

Needs a CUDA GPU; on a machine without one it says so and exits with status 2. ``--cpu-smoke`` runs
the same code path on CPU (tiny shape advised, e.g. ``--num-layers 1 --hidden-size 64``) to check it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from typing import Optional, Sequence, Tuple

warnings.filterwarnings("ignore", message=".*Transformer Engine and Apex are not installed.*")

# The peak table and the MFU arithmetic live in core (the throughput plugin uses them too).
from plugtron.training.flops import PEAK_BF16, mfu, peak_bf16_tflops  # noqa: E402,F401


def _args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=50, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--seq-length", type=int, default=2048)
    ap.add_argument("--micro-batch-size", type=int, default=4)
    ap.add_argument("--global-batch-size", type=int, default=16)
    ap.add_argument("--tokens-per-step", type=int, default=None,
                    help="sets the global batch to this many tokens (a multiple of seq-length x micro-batch-size)")
    ap.add_argument("--layer-spec", choices=("auto", "te", "local"), default="auto")
    ap.add_argument("--precision", default="bf16_mixed", help="a mixed_precision preset (default bf16_mixed)")
    ap.add_argument("--provider", default="llama32_1b", help="a provider name (default llama32_1b)")
    ap.add_argument("--num-layers", type=int, default=None, help="override the provider's layer count")
    ap.add_argument("--hidden-size", type=int, default=None,
                    help="override the hidden size (then FFN 4x hidden, 8 heads, 2 KV groups: a small test shape)")
    ap.add_argument("--fusions", action="store_true",
                    help="Megatron's torch.compile fusions: SwiGLU (bias_activation_fusion) and the native fused "
                         "cross entropy (needs Triton on CUDA; the first steps compile)")
    ap.add_argument("--peak-tflops", type=float, default=None,
                    help="bf16 peak to compute MFU against (default: looked up from the GPU's name)")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run on CPU anyway to check this script's code path (no MFU; use a tiny shape)")
    a = ap.parse_args(argv)
    if a.tokens_per_step is not None:
        if a.tokens_per_step % (a.seq_length * a.micro_batch_size):
            ap.error(f"--tokens-per-step {a.tokens_per_step} is not a multiple of seq-length x micro-batch-size "
                     f"= {a.seq_length * a.micro_batch_size}")
        a.global_batch_size = a.tokens_per_step // a.seq_length
    if a.global_batch_size % a.micro_batch_size:
        ap.error(f"--global-batch-size {a.global_batch_size} is not a multiple of --micro-batch-size {a.micro_batch_size}")
    if a.steps < 1 or a.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    return a


def choose_transformer_impl(layer_spec: str, te_importable: bool) -> Tuple[str, Optional[str]]:
    """``(transformer_impl, note)`` for ``--layer-spec``; a ``SystemExit`` message when ``te`` is asked
    for without Transformer Engine."""
    if layer_spec == "te" and not te_importable:
        raise SystemExit("mfu.py: error: --layer-spec te: Transformer Engine is not importable here "
                         "(pip install transformer-engine[pytorch]), or use --layer-spec local/auto")
    if layer_spec == "local" or (layer_spec == "auto" and not te_importable):
        note = None if layer_spec == "local" else (
            "note: Transformer Engine is not importable: using Megatron-Core's local layer spec "
            "(attention through torch SDPA; no fused TE norms/linears)")
        return "local", note
    return "transformer_engine", None


def build_config(a: argparse.Namespace, transformer_impl: str):
    """The run's ``ConfigContainer`` (unvalidated): the provider in the given precision on mock data."""
    from megatron.core.distributed import DistributedDataParallelConfig
    from megatron.core.optimizer import OptimizerConfig

    from plugtron.config import (ConfigContainer, GPTDatasetConfig, LoggerConfig, SchedulerConfig,
                                 TokenizerConfig, TrainingConfig)
    from plugtron.providers.registry import provider_class

    model = provider_class(a.provider)(seq_length=a.seq_length, transformer_impl=transformer_impl)
    if a.num_layers is not None:
        model.num_layers = a.num_layers
    if a.hidden_size is not None:  # a scaled-down shape keeping the provider's head geometry ratios
        model.hidden_size, model.ffn_hidden_size = a.hidden_size, 4 * a.hidden_size
        model.num_attention_heads, model.num_query_groups = 8, 2
    model.vocab_size = model.vocab_size or 32000
    if a.fusions:  # Megatron's jit_fuser is torch.compile: kernels generated at the first (warm-up) steps
        model.bias_activation_fusion = True
        model.cross_entropy_loss_fusion, model.cross_entropy_fusion_impl = True, "native"
    steps = a.warmup + a.steps
    return ConfigContainer(
        model=model,
        train=TrainingConfig(micro_batch_size=a.micro_batch_size, global_batch_size=a.global_batch_size,
                             train_iters=steps, eval_interval=None, eval_iters=0),
        optimizer=OptimizerConfig(optimizer="adam", lr=3e-4, min_lr=3e-5, weight_decay=0.1, adam_beta2=0.95,
                                  clip_grad=1.0),
        scheduler=SchedulerConfig(lr_decay_style="cosine", lr_warmup_iters=min(2, steps - 1)),
        # mock data: Megatron's MockGPTDataset, ids below the vocabulary (no I/O in the timing)
        dataset=GPTDatasetConfig(mock=True, sequence_length=a.seq_length, split="1,0,0"),
        tokenizer=TokenizerConfig(tokenizer_type="NullTokenizer", vocab_size=model.vocab_size - 1),
        ddp=DistributedDataParallelConfig(),
        logger=LoggerConfig(log_interval=10**9),
        mixed_precision=a.precision,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    a = _args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not a.cpu_smoke:
        print("mfu.py: error: this benchmark needs a CUDA GPU (torch.cuda.is_available() is False: no GPU, "
              "a CPU-only torch, or CUDA_VISIBLE_DEVICES hides the GPUs); --cpu-smoke checks the code path on CPU",
              file=sys.stderr)
        return 2
    from plugtron.platform import machine
    from plugtron.errors import PlugtronError
    from plugtron.providers.gpt import te_available
    from plugtron.training import setup
    from plugtron.training.flops import num_floating_point_operations
    from plugtron.training.run_data import build_run_data
    from plugtron.training.state import TrainState
    from plugtron.training.step import train_step

    impl, note = choose_transformer_impl(a.layer_spec, te_available())
    if note:
        print(note)
    cfg = build_config(a, impl)
    try:
        cfg.validate(1)
        machine.check(cfg)
    except PlugtronError as err:
        print(f"mfu.py: error: {err}", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name() if cuda else "CPU"
    peak = a.peak_tflops or (peak_bf16_tflops(device) if cuda else None)
    setup.init_distributed(cfg)
    try:
        setup.set_seeds(cfg)
        state = TrainState(config=cfg)
        state.model = setup.build_model(cfg)
        state.optimizer, state.scheduler = setup.build_optimizer(cfg, state.model)
        its = build_run_data(cfg, state).train_iterators
        m = cfg.model
        params = sum(p.numel() for c in state.model for p in c.parameters())
        attn = next((type(mod).__name__ for mod in state.model[0].modules()
                     if type(mod).__name__.endswith("DotProductAttention")), "?")
        print(f"device: {device} | torch {torch.__version__} | layer spec {impl} (core attention {attn}) | "
              f"precision {a.precision} | fusions {'on' if a.fusions else 'off'}")
        print(f"model: {a.provider}, {m.num_layers} layers, hidden {m.hidden_size}, FFN {m.ffn_hidden_size}, "
              f"{m.num_attention_heads} heads / {m.num_query_groups} KV groups, vocab {m.padded_vocab_size(m.vocab_size)}, "
              f"{params / 1e9:.3f} B params")
        tokens = cfg.train.global_batch_size * m.seq_length
        print(f"batch: {cfg.num_microbatches} micro-batches of {cfg.train.micro_batch_size} x {m.seq_length} = "
              f"{tokens} tokens/step | {a.warmup} warm-up + {a.steps} timed steps")

        def sync() -> None:
            if cuda:
                torch.cuda.synchronize()  # CPU-GPU sync: the step's kernels have finished

        times, losses = [], []
        for i in range(a.warmup + a.steps):
            sync()
            t0 = time.perf_counter()
            loss, ok, _, _, _ = train_step(cfg, state.model, state.optimizer, state.scheduler, its)
            sync()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
            losses.append(float(loss))
            if not ok:
                print(f"step {i + 1}: optimizer step skipped (inf/nan gradients)")
        mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    finally:
        setup.destroy_distributed()

    flops = num_floating_point_operations(cfg)
    step = statistics.median(times)
    print(f"loss: first {losses[0]:.4f}, last {losses[-1]:.4f}")
    print(f"step time: median {step * 1000:.1f} ms (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}) | "
          f"peak memory {mem:.1f} GiB")
    print(f"throughput: {tokens / step:,.0f} tokens/s | model {flops / step / 1e12:.1f} TFLOP/s "
          f"({flops / 1e12:.1f} TFLOP per step, Megatron's formula)")
    if peak:
        print(f"MFU: {100 * mfu(flops, step, peak):.1f} % of {peak:.0f} TFLOP/s dense bf16 ({device})")
    else:
        print(f"MFU: n/a: no bf16 peak known for {device!r} (give --peak-tflops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
