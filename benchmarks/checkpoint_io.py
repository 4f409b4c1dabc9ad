"""Checkpoint save/load time against the disk's own sequential write/read speed, in one run.

A GPT of ~25M parameters (~100 MB of fp32 weights; with Adam's two moments ~300 MB on disk) is
built and stepped once so the optimizer has state, then saved and resumed through plugtron's
``Checkpointer`` (torch_dist, the same path as training: staging, fsync, manifest with CRC32,
atomic publish; load verifies the manifest first). The baseline writes the same number of bytes
with plain file I/O (+ fsync) and reads them back, in the same directory.

    python benchmarks/checkpoint_io.py [--dir /tmp/plugtron-bench] [--rounds 3] [--layers 8 --hidden 512]

The load is also timed with torch's own ``FileSystemReader`` in place of plugtron's memory-mapped
reader (``plugtron.checkpointing.fast_reader``), in the same rounds, to show what that reader saves.

Reads usually come from the page cache for both the checkpoint and the baseline (the files were
just written); the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")


def raw_io(path: str, nbytes: int) -> tuple:
    block = os.urandom(1 << 24)
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        left = nbytes
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)
        f.flush()
        os.fsync(f.fileno())
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    read_s = time.perf_counter() - t0
    os.remove(path)
    return write_s, read_s


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, files in os.walk(path) for n in files)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=512)
    args = ap.parse_args()

    from plugtron.checkpointing import fast_reader, layout
    from plugtron.checkpointing.loading import load_into, load_weights
    from plugtron.checkpointing.manager import Checkpointer
    from plugtron.config import load_config
    from plugtron.plugin_manager import PluginManager
    from plugtron.training import setup
    from plugtron.training.state import TrainState
    from plugtron.training.step import train_step
    from plugtron.data import MicroBatchIterator, build_datasets, build_tokenizer

    work = args.dir or tempfile.mkdtemp(prefix="plugtron-ckpt-bench-")
    os.makedirs(work, exist_ok=True)
    root = os.path.join(work, "ckpt")
    cfg = load_config(None, [f"model.num_layers={args.layers}", f"model.hidden_size={args.hidden}",
                             "model.num_attention_heads=8", "train.train_iters=1", "train.eval_interval=null",
                             "train.global_batch_size=4", "train.micro_batch_size=4", f"checkpoint.save={root}",
                             "scheduler.lr_warmup_iters=0"])
    cfg.validate()
    hooks = PluginManager().load(cfg)
    setup.init_distributed(cfg)
    try:
        setup.set_seeds(cfg)
        state = TrainState(config=cfg)
        state.model = setup.build_model(cfg)
        state.optimizer, state.scheduler = setup.build_optimizer(cfg, state.model)
        train_ds, _, _ = build_datasets(cfg, build_tokenizer(cfg.tokenizer))
        it = MicroBatchIterator(train_ds, 4, 4)
        train_step(cfg, state.model, state.optimizer, state.scheduler, [it])  # optimizer state exists
        state.iteration = 1
        n_params = sum(p.numel() for c in state.model for p in c.parameters())
        ckptr = Checkpointer(cfg, hooks)
        saves, loads, torch_loads, weights_loads, raws_w, raws_r = [], [], [], [], [], []
        fast_patch = fast_reader.patched
        for r in range(args.rounds):
            shutil.rmtree(root, ignore_errors=True)
            t0 = time.perf_counter()
            ckptr.save(state)
            saves.append(time.perf_counter() - t0)
            ckpt_dir = layout.iter_path(root, 1)
            nbytes = dir_bytes(ckpt_dir)
            t0 = time.perf_counter()
            load_into(ckptr, state, ckpt_dir)
            loads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()  # pretrained_checkpoint: weights only (every file still CRC-checked)
            load_weights(ckptr, state.model, state.optimizer, ckpt_dir, "checkpoint.pretrained_checkpoint")
            weights_loads.append(time.perf_counter() - t0)
            fast_reader.patched = contextlib.nullcontext  # torch's FileSystemReader, for comparison
            try:
                t0 = time.perf_counter()
                load_into(ckptr, state, ckpt_dir)
                torch_loads.append(time.perf_counter() - t0)
            finally:
                fast_reader.patched = fast_patch
            w, rd = raw_io(os.path.join(work, "raw.bin"), nbytes)
            raws_w.append(w)
            raws_r.append(rd)
        save, load, torch_load = statistics.median(saves), statistics.median(loads), statistics.median(torch_loads)
        weights_load = statistics.median(weights_loads)
        raw_w, raw_r = statistics.median(raws_w), statistics.median(raws_r)
        mb = nbytes / 1e6
        print(f"model: {n_params / 1e6:.1f}M params ({n_params * 4 / 1e6:.0f} MB fp32); checkpoint {mb:.0f} MB on disk; "
              f"median of {args.rounds} rounds")
        print(f"save  {save:7.2f} s  ({mb / save:7.0f} MB/s) | raw write+fsync {raw_w:6.2f} s ({mb / raw_w:7.0f} MB/s) | ratio {save / raw_w:5.2f}")
        print(f"load  {load:7.2f} s  ({mb / load:7.0f} MB/s) | raw read        {raw_r:6.2f} s ({mb / raw_r:7.0f} MB/s) | ratio {load / raw_r:5.2f}")
        print(f"load weights only (pretrained_checkpoint) {weights_load:6.2f} s | ratio {weights_load / raw_r:5.2f} "
              "(against reading the whole checkpoint: its CRC pass does)")
        print(f"load with torch's FileSystemReader {torch_load:6.2f} s ({mb / torch_load:7.0f} MB/s) | ratio {torch_load / raw_r:5.2f}")
        print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
              "(1/5/15 min); the load includes verifying every file's CRC32 against the manifest")
    finally:
        setup.destroy_distributed()
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
