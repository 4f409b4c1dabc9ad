"""``plugtron convert import-hf HF_DIR OUT_DIR`` and ``plugtron convert export-hf CKPT_DIR HF_DIR``.

Kept out of ``plugtron.cli`` so ``plugtron --help`` does not import torch; errors are
``PlugtronError``s, printed by the CLI without a traceback.
"""

from __future__ import annotations


def add_parser(sub) -> None:
    conv = sub.add_parser("convert", help="convert Hugging Face <-> plugtron checkpoints")
    acts = conv.add_subparsers(dest="action", metavar="ACTION")
    imp = acts.add_parser("import-hf", help="a local Hugging Face model dir -> a plugtron (Megatron torch_dist) checkpoint")
    imp.add_argument("hf_dir", metavar="HF_DIR", help="local directory with config.json and *.safetensors")
    imp.add_argument("out_dir", metavar="OUT_DIR", help="new checkpoint directory (use as checkpoint.pretrained_checkpoint)")
    imp.add_argument("--tp", type=int, default=1, help="tensor-parallel size to shard into (>1: run under torchrun)")
    imp.add_argument("--overwrite", action="store_true",
                     help="write into a non-empty OUT_DIR, replacing a previous import (never training checkpoints)")
    exp = acts.add_parser("export-hf", help="a plugtron checkpoint -> config.json + safetensors that transformers loads")
    exp.add_argument("ckpt_dir", metavar="CKPT_DIR", help="plugtron checkpoint (with latest_checkpointed_iteration.txt), or a NeMo 2.0 checkpoint directory (weights/ + context/)")
    exp.add_argument("hf_dir", metavar="HF_DIR", help="output directory")
    exp.add_argument("--max-shard-gb", type=float, default=None, help="split the safetensors into shards of this size")
    exp.add_argument("--overwrite", action="store_true",
                     help="write into a non-empty HF_DIR, replacing its config.json and safetensors (other files kept)")


def cmd_import_hf(ns) -> int:
    from plugtron.platform.freed_memory import release_freed_memory
    from plugtron.providers.hf import AutoBridge

    release_freed_memory()  # a process of its own: freed tensors go back to the OS at once

    AutoBridge.import_ckpt(ns.hf_dir, ns.out_dir, tensor_model_parallel_size=ns.tp, overwrite=ns.overwrite)
    print(f"wrote {ns.out_dir} (use it as checkpoint.pretrained_checkpoint)")
    return 0


def cmd_export_hf(ns) -> int:
    from plugtron.platform.freed_memory import release_freed_memory
    from plugtron.providers.hf import AutoBridge

    release_freed_memory()  # a process of its own: freed tensors go back to the OS at once

    shard = int(ns.max_shard_gb * 2**30) if ns.max_shard_gb else None
    AutoBridge.export_ckpt(ns.ckpt_dir, ns.hf_dir, max_shard_bytes=shard, overwrite=ns.overwrite)
    print(f"wrote {ns.hf_dir}")
    return 0
