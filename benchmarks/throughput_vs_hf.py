"""Training throughput of plugtron against a plain PyTorch loop over ``transformers.LlamaForCausalLM``.

Same architecture on both sides (Llama: RMSNorm, RoPE, SwiGLU, no biases, untied embeddings),
same shape (default: hidden 384, 6 layers, FFN 1024, 6 heads, vocab 8192, batch 8 x 256 tokens),
same optimizer (torch AdamW, lr 2e-3, betas 0.9/0.95, weight decay 0.1; no gradient clipping),
same mock token batches (Megatron's ``MockGPTDataset``), fp32, one process.

* **plugtron**: the model, optimizer, scheduler and data plugtron's trainer builds for this config
  (``setup.build_model`` / ``build_optimizer``: Megatron GPTModel, local layer spec on CPU, Megatron
  DDP and optimizer), stepped by ``plugtron.training.step.train_step`` plus the loop's step record,
  the work of one iteration of ``plugtron train`` (the rest of the loop - hooks, logging - is
  measured by ``benchmarks/hook_overhead.py``: < 1 % of a step).
* **hf**: what a user writes by hand: ``zero_grad``, ``model(input_ids, labels=...)``, ``loss.backward()``,
  ``optimizer.step()``, with transformers' default attention (SDPA).

The CPU shims' torch-function mode is taken off the mode stack while the HF step runs (it is a
plugtron cost, not the HF loop's). Rounds alternate the order (ABBA) after a warm-up of both; each
round also times a large fp32 matmul, and the best of those is the machine's matmul peak for this
run, against which each side's model FLOP/s (Megatron-LM's count: matmuls only, backward = 2 x
forward) is reported. The ratio is hf step time / plugtron step time (> 1: plugtron is faster), as
the ratio of the two medians, with a paired bootstrap 95 % interval over rounds.

    python benchmarks/throughput_vs_hf.py                      # the issue's shape, 1 torch thread
    python benchmarks/throughput_vs_hf.py --threads 2 --rounds 6
    python benchmarks/throughput_vs_hf.py --hidden 768 --ffn 2048 --heads 12   # a 4x larger model
    python benchmarks/throughput_vs_hf.py --profile 3          # where the time goes, per op family
    python benchmarks/throughput_vs_hf.py --megatron-rope-swiglu   # without the copy-free RoPE/SwiGLU
    python benchmarks/throughput_vs_hf.py --compile            # plugtron with the compile plugin (compile={})
    python benchmarks/throughput_vs_hf.py --compile --set compile.scope=model
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import time
import warnings


def _args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--vocab", type=int, default=8192, help="model vocabulary (a multiple of 128)")
    ap.add_argument("--batch", type=int, default=8, help="sequences per step (one micro-batch)")
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=8, help="timed rounds; each times one step of each side")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps of each side first")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1, the default, is far less sensitive to other "
                         "processes on a shared machine; 0: torch's choice)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="instead of timing, profile N steps of each side with torch.profiler and print "
                         "the time per phase (forward/backward/optimizer) and op family")
    ap.add_argument("--megatron-rope-swiglu", action="store_true",
                    help="Megatron's own unfused RoPE and SwiGLU instead of plugtron's copy-free ones "
                         "(providers/unfused_fast_paths.py; same results bit for bit), to measure them")
    ap.add_argument("--per-tensor-adam", action="store_true",
                    help="torch's per-tensor Adam loop instead of its fused kernel (plugtron/training/fused_adam.py)")
    ap.add_argument("--compile", action="store_true",
                    help="plugtron with the compile plugin (compile={}; its options through --set compile.KEY=VALUE); "
                         "the warm-up steps compile, the timed ones do not")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra plugtron config override (e.g. model.apply_rope_fusion=true); repeatable")
    return ap.parse_args()


def plugtron_config(a):
    from plugtron.config import load_config

    cfg = load_config(None, [
        "model.provider=llama", f"model.num_layers={a.layers}", f"model.hidden_size={a.hidden}",
        f"model.ffn_hidden_size={a.ffn}", f"model.num_attention_heads={a.heads}", f"model.seq_length={a.seq}",
        f"model.vocab_size={a.vocab}", "model.make_vocab_size_divisible_by=128", "model.init_method_std=0.02",
        f"dataset.sequence_length={a.seq}", "dataset.mock=true",
        "tokenizer.tokenizer_type=NullTokenizer", f"tokenizer.vocab_size={a.vocab - 1}",
        f"train.micro_batch_size={a.batch}", f"train.global_batch_size={a.batch}", "train.eval_interval=null",
        "train.train_iters=100000", "optimizer.clip_grad=0.0", "optimizer.lr=2e-3", "optimizer.weight_decay=0.1",
        "optimizer.adam_beta1=0.9", "optimizer.adam_beta2=0.95", "scheduler.lr_decay_style=constant",
        "scheduler.lr_warmup_iters=0", *(["compile={}"] if a.compile else []), *a.set,
    ])
    cfg.validate()
    return cfg


def hf_model(a):
    from transformers import LlamaConfig, LlamaForCausalLM

    conf = LlamaConfig(
        vocab_size=a.vocab, hidden_size=a.hidden, intermediate_size=a.ffn, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.heads, max_position_embeddings=a.seq,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
        mlp_bias=False, hidden_act="silu", initializer_range=0.02,
    )
    return LlamaForCausalLM(conf).train()


@contextlib.contextmanager
def no_torch_function_modes():
    """Run the body with the torch-function mode stack empty (the plugtron CPU device remap off)."""
    from torch.overrides import _get_current_function_mode_stack, _pop_mode, _push_mode

    saved = [_pop_mode() for _ in _get_current_function_mode_stack()]
    try:
        yield
    finally:
        for mode in reversed(saved):
            _push_mode(mode)


def matmul_peak_flops(n: int = 1024, repeats: int = 3) -> float:
    """Best fp32 FLOP/s of an n x n x n matmul (one timing of the machine's matmul peak)."""
    import torch

    x, y = torch.randn(n, n), torch.randn(n, n)
    torch.mm(x, y)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(x, y)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def bootstrap_ratio_ci(num, den, draws: int = 2000, seed: int = 0):
    """Paired bootstrap over rounds of median(num) / median(den): (2.5 %, 97.5 %) quantiles."""
    rng, n = random.Random(seed), len(num)
    ratios = []
    for _ in range(draws):
        idx = [rng.randrange(n) for _ in range(n)]
        ratios.append(statistics.median(num[i] for i in idx) / statistics.median(den[i] for i in idx))
    ratios.sort()
    return ratios[int(0.025 * draws)], ratios[int(0.975 * draws) - 1]


def build(a):
    """(plugtron_step, hf_step, cfg, flops per step) sharing nothing but the data stream's content."""
    import torch

    from plugtron.data import MicroBatchIterator, build_datasets, build_tokenizer
    from plugtron.training import setup
    from plugtron.training.flops import num_floating_point_operations
    from plugtron.training.state import TrainState
    from plugtron.data.batches import OnDevice
    from plugtron.training.step import train_step

    cfg = plugtron_config(a)
    if a.per_tensor_adam:
        from plugtron.training import fused_adam

        fused_adam.ENABLED = False
    if a.megatron_rope_swiglu:
        from plugtron.providers import unfused_fast_paths

        unfused_fast_paths.install_fast_rope = lambda: None
        unfused_fast_paths.use_fast_mlp = lambda model: 0
    setup.init_distributed(cfg)
    setup.set_seeds(cfg)
    chunks = setup.build_chunks(cfg)
    if cfg.compile is not None:  # what plugtron train does with the section: the plugin's transform
        from plugtron.plugins.torch_compile import Compile

        Compile(cfg).transform_model(cfg, chunks)
    model = setup.wrap_chunks(cfg, chunks)
    optimizer, scheduler = setup.build_optimizer(cfg, model)
    train_ds, _, _ = build_datasets(cfg, build_tokenizer(cfg.tokenizer))
    t = cfg.train
    state = TrainState(config=cfg, model=model, optimizer=optimizer, scheduler=scheduler)
    flops = num_floating_point_operations(cfg)
    plug_its = [OnDevice(MicroBatchIterator(train_ds, t.micro_batch_size, t.global_batch_size))]

    def plugtron_step():
        lr = state.step_lr()
        loss, ok, grad_norm, num_zeros, _ = train_step(cfg, state.model, state.optimizer, state.scheduler, plug_its)
        state.record_step(loss, ok, grad_norm, num_zeros, flops, lr=lr)
        return loss

    with no_torch_function_modes():
        hf = hf_model(a)
        o = cfg.optimizer
        hf_opt = torch.optim.AdamW(hf.parameters(), lr=o.lr, betas=(o.adam_beta1, o.adam_beta2), eps=o.adam_eps,
                                   weight_decay=o.weight_decay)
    hf_it = MicroBatchIterator(train_ds, t.micro_batch_size, t.global_batch_size)

    def hf_step():
        with no_torch_function_modes():
            batch = next(hf_it)
            hf_opt.zero_grad(set_to_none=True)
            loss = hf(input_ids=batch["tokens"], labels=batch["tokens"]).loss
            loss.backward()
            hf_opt.step()
            return loss.detach()

    return {"plugtron": plugtron_step, "hf": hf_step}, cfg, flops, (model, hf)


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f} M"


def time_rounds(a, steps, flops):
    names = list(steps)
    for _ in range(a.warmup):
        for name in names:
            steps[name]()
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    peaks = []
    for r in range(a.rounds):
        peaks.append(matmul_peak_flops())
        for name in (names if r % 2 == 0 else names[::-1]):
            t0, c0 = time.perf_counter(), time.process_time()
            steps[name]()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return wall, cpu, max(peaks)


def report(a, cfg, wall, cpu, peak, flops, models):
    import torch

    tokens = a.batch * a.seq
    plug_params = sum(p.numel() for p in models[0][0].parameters())
    hf_params = sum(p.numel() for p in models[1].parameters())
    print(f"shape: hidden {a.hidden}, {a.layers} layers, FFN {a.ffn}, {a.heads} heads, vocab {a.vocab}, "
          f"batch {a.batch} x {a.seq} tokens; params plugtron {_fmt_params(plug_params)}, hf {_fmt_params(hf_params)}")
    if cfg.compile is not None:
        c = cfg.compile
        print(f"plugtron compiled: torch.compile backend={c.backend} mode={c.mode} scope={c.scope} (compiled in the warm-up)")
    print(f"{a.rounds} rounds (ABBA), {a.warmup} warm-up steps each; torch threads {torch.get_num_threads()}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"matmul peak (fp32, best of the run) {peak / 1e9:.1f} GFLOP/s; model {flops / 1e9:.1f} GFLOP/step")
    # wall: what a user waits for; cpu (process time): less disturbed by other processes taking the
    # cores (with one torch thread, a descheduled step accrues wall time but no CPU time)
    for label, times in (("wall", wall), ("cpu ", cpu)):
        for name in ("plugtron", "hf"):
            ts = sorted(times[name])
            med = statistics.median(ts)
            print(f"[{label}] {name:8s} step: median {med * 1000:8.1f} ms  (min {ts[0] * 1000:.1f}, max "
                  f"{ts[-1] * 1000:.1f})  {tokens / med:7.0f} tokens/s  {flops / med / 1e9:6.1f} GFLOP/s = "
                  f"{flops / med / peak * 100:5.1f} % of the matmul peak")
        ratio = statistics.median(times["hf"]) / statistics.median(times["plugtron"])
        lo, hi = bootstrap_ratio_ci(times["hf"], times["plugtron"])
        faster = sum(h > p for h, p in zip(times["hf"], times["plugtron"]))
        print(f"[{label}] ratio hf/plugtron step time (>= 1: plugtron at least as fast): {ratio:.3f}  "
              f"(bootstrap 95 % CI {lo:.3f} .. {hi:.3f}; plugtron faster in {faster}/{a.rounds} rounds)")


def main() -> None:
    a = _args()
    warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    steps, cfg, flops, models = build(a)
    if a.profile:
        from throughput_profile import profile_steps

        for _ in range(a.warmup):
            for fn in steps.values():
                fn()
        profile_steps(steps, a.profile)
        return
    wall, cpu, peak = time_rounds(a, steps, flops)
    report(a, cfg, wall, cpu, peak, flops, models)


if __name__ == "__main__":
    main()
