"""``plugtron peft merge ADAPTER_CKPT OUT_DIR`` and ``plugtron peft export-hf ADAPTER_CKPT OUT_DIR``
(torch-free until a command runs, so ``plugtron --help`` stays instant)."""

from __future__ import annotations


def add_parser(sub) -> None:
    peft = sub.add_parser("peft", help="adapter checkpoints of peft runs: merge, Hugging Face PEFT export")
    acts = peft.add_subparsers(dest="action", metavar="ACTION")
    merge = acts.add_parser("merge", help="fold the adapters into their base, one weight at a time (memory: about "
                                          "twice the largest weight): a normal plugtron checkpoint "
                                          "(then: plugtron convert export-hf OUT_DIR HF_DIR)")
    merge.add_argument("adapter_ckpt", metavar="ADAPTER_CKPT", help="a peft run's checkpoint (save dir or iter_XXXXXXX)")
    merge.add_argument("out_dir", metavar="OUT_DIR", help="new directory for the merged checkpoint")
    exp = acts.add_parser("export-hf", help="the adapters alone in Hugging Face PEFT's layout "
                                            "(adapter_config.json + adapter_model.safetensors)")
    exp.add_argument("adapter_ckpt", metavar="ADAPTER_CKPT", help="a peft run's checkpoint (save dir or iter_XXXXXXX)")
    exp.add_argument("out_dir", metavar="OUT_DIR", help="new directory for the adapter")
    exp.add_argument("--base-model", default="", help="base_model_name_or_path to record (e.g. the directory "
                                                      "plugtron convert export-hf wrote for the base)")


def cmd_merge(ns) -> int:
    from plugtron.platform.freed_memory import release_freed_memory
    from plugtron.providers.peft.merge import merge

    release_freed_memory()  # a process of its own: freed tensors go back to the OS at once

    merge(ns.adapter_ckpt, ns.out_dir)
    print(f"wrote {ns.out_dir} (a plugtron checkpoint; plugtron convert export-hf {ns.out_dir} HF_DIR makes it a "
          "Hugging Face model)")
    return 0


def cmd_export_hf(ns) -> int:
    from plugtron.providers.peft.hf_peft import export

    export(ns.adapter_ckpt, ns.out_dir, base_model=ns.base_model)
    print(f"wrote {ns.out_dir} (load it with peft.PeftModel.from_pretrained(base_model, {ns.out_dir!r}))")
    return 0
