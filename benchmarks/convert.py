"""Hugging Face import/export time against reading/writing the same bytes of safetensors directly.

Writes a random Llama-layout model of about ``--size-mb`` (fp32, 32000-token vocabulary, 12
layers, hidden size chosen to hit the size) as config.json + model.safetensors, then times, in one
process and on the same files:

- read:   every tensor of model.safetensors loaded with safetensors, one at a time (import's input)
- write:  the same number of bytes written to one file with plain file I/O and fsynced (the output
  of either direction: import writes a checkpoint of these bytes, export a model.safetensors)
- read ckpt: every file of the imported checkpoint read with plain file I/O (export's input)
- import: ``AutoBridge.import_ckpt`` (streamed: each tensor read, fused, written into the
  torch_dist checkpoint; then the manifest's CRC32 pass and the atomic publish)
- export: ``AutoBridge.export_ckpt`` (the manifest verified, then each tensor read from the
  checkpoint, split and written into model.safetensors)

Each direction must read its input and durably write its output, so its floor is the raw read of
the one plus the raw write+fsync of the other, and the ratio printed first is against that floor
("x floor"). The ratios against the raw read alone (import) and the raw write alone (export) are
printed too. Each step's peak resident memory above the process's size before it (VmHWM, reset through
/proc/self/clear_refs on Linux) is printed too, with the machine's load average: timings on a
shared machine are contended.

    python benchmarks/convert.py [--size-mb 500] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def _hf_config(size_mb: float) -> dict:
    vocab, layers = 32000, 12
    # params = 2*vocab*h (untied embeddings) + layers*12*h^2 (attention 4h^2 + SwiGLU 3*h*(8h/3))
    target = size_mb * 2**20 / 4
    h = (-2 * vocab + math.sqrt(4 * vocab**2 + 48 * layers * target)) / (24 * layers)
    h = max(64, int(round(h / 64)) * 64)
    heads = h // 64
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab, "hidden_size": h,
        "intermediate_size": int(round(8 * h / 3 / 64)) * 64, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": heads // 4 if heads % 4 == 0 else heads,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "torch_dtype": "float32",
    }


def _write_model(path: Path, size_mb: float) -> int:
    """config.json + model.safetensors, generated and written one tensor at a time (a model bigger
    than memory can be benchmarked); returns the weights' bytes."""
    import torch

    from plugtron.providers.hf import files
    from plugtron.providers.hf.configs import family_for
    from plugtron.providers.hf.weights import hf_specs
    from plugtron.providers.llama import LlamaProvider

    cfg = _hf_config(size_mb)
    provider = LlamaProvider(**family_for("LlamaForCausalLM").to_provider(cfg))
    specs = hf_specs("llama", provider, torch.float32)
    g = torch.Generator().manual_seed(0)
    pieces = ((name, torch.randn(shape, generator=g) * 0.02) for name, (shape, _) in specs.items())
    files.write_model_dir_streaming(path, specs, pieces, cfg)
    return sum(4 * math.prod(shape) for shape, _ in specs.values())


def _rss(field: str) -> int:
    import re

    try:
        with open("/proc/self/status") as f:
            return int(re.search(rf"{field}:\s+(\d+) kB", f.read()).group(1)) * 1024
    except (OSError, AttributeError):
        return 0


def _timed(fn):
    """(seconds, peak resident bytes above the start, result)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
    except OSError:
        pass
    base = _rss("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, max(0, _rss("VmHWM") - base), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=float, default=500.0, help="model size in MiB (fp32)")
    ap.add_argument("--workdir", default=None, help="scratch directory (default: a temporary one, removed)")
    args = ap.parse_args()

    from safetensors import safe_open

    from plugtron.platform.freed_memory import release_freed_memory

    release_freed_memory()  # as `plugtron convert` does

    from plugtron.providers.hf import AutoBridge

    work = Path(args.workdir or tempfile.mkdtemp(prefix="plugtron-convert-bench-"))
    try:
        nbytes = _write_model(work / "hf", args.size_mb)
        src = work / "hf" / "model.safetensors"

        def read_all():  # every tensor read (a copy: every byte touched), then dropped, as import does
            with safe_open(str(src), framework="pt") as f:
                for k in f.keys():
                    f.get_tensor(k).clone()

        def write_all():  # the same number of bytes written to one file and fsynced, as export does
            block = os.urandom(1 << 24)
            with open(work / "direct.bin", "wb") as f:
                for start in range(0, nbytes, len(block)):
                    f.write(block[: min(len(block), nbytes - start)])
                f.flush()
                os.fsync(f.fileno())

        # warm up on a small model first: the modules conversion imports are not its cost
        _write_model(work / "warm", 20)
        AutoBridge.import_ckpt(str(work / "warm"), str(work / "warm-mcore"))
        AutoBridge.export_ckpt(str(work / "warm-mcore"), str(work / "warm-exported"))
        t_read, m_read, _ = _timed(read_all)
        t_write, m_write, _ = _timed(write_all)
        t_import, m_import, _ = _timed(lambda: AutoBridge.import_ckpt(str(work / "hf"), str(work / "mcore")))
        t_export, m_export, _ = _timed(lambda: AutoBridge.export_ckpt(str(work / "mcore"), str(work / "exported")))

        def read_ckpt():  # every byte of the checkpoint export reads, plain reads
            for d, _, names in os.walk(work / "mcore"):
                for n in names:
                    with open(os.path.join(d, n), "rb") as f:
                        while f.read(1 << 24):
                            pass

        t_read_ckpt, m_read_ckpt, _ = _timed(read_ckpt)
        floor_import, floor_export = t_read + t_write, t_read_ckpt + t_write
        mb = nbytes / 2**20
        hidden = json.loads((work / "hf" / "config.json").read_text())["hidden_size"]
        print(f"model: {mb:.0f} MiB of fp32 safetensors ({hidden} hidden, 12 layers)")
        print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min)")
        print(f"{'step':<11}{'seconds':>10}{'MiB/s':>10}{'x floor':>10}{'peak MiB':>10}")
        for name, t, floor, m in (("read", t_read, None, m_read), ("write", t_write, None, m_write),
                                  ("read ckpt", t_read_ckpt, None, m_read_ckpt),
                                  ("import", t_import, floor_import, m_import), ("export", t_export, floor_export, m_export)):
            ratio = f"{t / floor:>10.2f}" if floor else f"{'':>10}"
            print(f"{name:<11}{t:>10.2f}{mb / t:>10.0f}{ratio}{m / 2**20:>10.0f}")
        print(f"ratio: import {t_import / floor_import:.2f}x (read + write+fsync), {t_import / t_read:.1f}x raw read alone; "
              f"export {t_export / floor_export:.2f}x (read ckpt + write+fsync), {t_export / t_write:.2f}x raw write alone "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
