"""Shared by the PEFT tests: a tiny random Llama imported from Hugging Face (the base checkpoint)
and an SFT task in JSONL whose loss covers the answers only (``test_sft``'s question/answer rows)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import yaml

from _hf_models import build, save

VOCAB = 257  # the byte-level tokenizer of the tiny recipe
TRAIN = ["train.eval_interval=null", "train.global_batch_size=4", "train.micro_batch_size=2",
         "optimizer.lr=1e-2", "scheduler.lr_warmup_iters=0", "logger.log_interval=1", "logger.run_summary=false",
         "logger.metrics_file=false", "logger.log_throughput=false", "dataset.seq_length=64", "model.seq_length=64"]


def make_base(root: Path, family: str = "llama") -> Path:
    """``root/hf`` (the Hugging Face model) and ``root/base`` (its plugtron import); returns root."""
    from plugtron.providers.hf import AutoBridge

    if not (root / "model.yaml").exists():
        save(build(family, vocab=VOCAB, positions=128), root / "hf")
        AutoBridge.import_ckpt(str(root / "hf"), str(root / "base"))
        model = yaml.safe_load((root / "base" / "iter_0000000" / "run_config.yaml").read_text())["model"]
        (root / "model.yaml").write_text(yaml.safe_dump({"model": model}))
        from test_sft import write_root

        write_root(root / "data")
    return root


def config(root: Path, extra=(), peft=True):
    """A LoRA SFT config on ``root``'s base (``peft=False``: full fine-tuning of the same model)."""
    from plugtron.config import load_config

    overrides = TRAIN + [f"dataset.dataset_root={root / 'data'}", f"checkpoint.pretrained_checkpoint={root / 'base'}"]
    if peft:
        overrides.append("peft.dim=8")
    return load_config(str(root / "model.yaml"), overrides + list(extra))


def digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def ids(n: int = 24, batch: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, n), generator=torch.Generator().manual_seed(seed))
