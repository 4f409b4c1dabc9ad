"""An adapter checkpoint in Hugging Face PEFT's layout: ``adapter_config.json`` and
``adapter_model.safetensors`` with ``base_model.model.<HF module>.lora_A.weight`` ([r, in]),
``lora_B.weight`` ([out, r]) and, for DoRA, ``lora_magnitude_vector`` ([out]), loadable with
``peft.PeftModel.from_pretrained(<the base exported by plugtron convert export-hf>, OUT_DIR)``.

Megatron's fused layers map exactly: the HF modules a fused layer is made of (``q_proj``, ``k_proj``,
``v_proj`` of ``linear_qkv``; ``gate_proj``, ``up_proj`` of ``linear_fc1``) share its A, and each
takes its own rows of B (and of DoRA's magnitude), since a row of ``B A`` (and its norm) belongs to
one output feature. Canonical LoRA's separate blocks map one to one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List

import torch

from plugtron.errors import CheckpointError
from plugtron.providers.peft.adapters import adapted_layers

log = logging.getLogger("plugtron")
LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "olmo2", "mixtral", "qwen3_moe", "glm4_moe", "gemma3", "phi3", "deepseek_v3", "gpt_oss")


def _split_rows(t: torch.Tensor, n_parts: int, provider) -> List[torch.Tensor]:
    """Rows of a fused layer's output -> the HF modules' rows (order of the HF names)."""
    if n_parts == 1:
        return [t]
    if n_parts == 2:  # [gate; up]
        return list(t.chunk(2, 0))
    nq = provider.num_attention_heads
    ng = provider.num_query_groups or nq
    hd = provider.kv_channels or provider.hidden_size // nq
    q, k, v = t.reshape(ng, nq // ng + 2, hd, *t.shape[1:]).split([nq // ng, 1, 1], 1)
    return [x.reshape(-1, *t.shape[1:]).contiguous() for x in (q, k, v)]


def hf_tensors(model, provider) -> Dict[str, torch.Tensor]:
    """``{HF PEFT key: tensor}`` for every adapter of ``model`` (TP=1)."""
    from plugtron.providers.hf import configs, weights

    family = configs.family_of_provider(provider).name
    if family not in LLAMA_LIKE:
        raise CheckpointError(f"peft export-hf: Hugging Face PEFT export covers the {', '.join(LLAMA_LIKE)} layouts; "
                              f"this model is {family} (merge it instead: plugtron peft merge)")
    names = {r.mcore: r.hf for r in weights.rules_for(family, provider)}
    out: Dict[str, torch.Tensor] = {}
    for path, layer in adapted_layers(model):
        hf = [n[: -len(".weight")] for n in names[path + ".weight"]]
        adapter = layer.peft_adapter
        blocks = adapter.blocks
        # Phi-3's one qkv_proj holds [q; k; v] rows: Megatron's KV-grouped rows regrouped
        regroup = len(hf) == 1 and path.endswith("linear_qkv")
        if "whole" in blocks:
            a, b = blocks["whole"].linear_in.weight, blocks["whole"].linear_out.weight
            rows = [torch.cat(_split_rows(b.detach(), 3, provider), 0)] if regroup else _split_rows(b.detach(), len(hf), provider)
            pieces = [(name, a, r) for name, r in zip(hf, rows)]
        elif len(hf) == 1 and len(blocks) > 1 or regroup:
            raise CheckpointError(f"peft export-hf: canonical LoRA's separate blocks of {path} cannot be written as "
                                  f"one LoRA on {hf[0]} (merge it instead: plugtron peft merge)")
        else:  # canonical LoRA: q/k/v or gate/up blocks, each its own HF module
            order = ["q", "k", "v"] if len(hf) == 3 else ["gate", "up"]
            pieces = [(name, blocks[p].linear_in.weight, blocks[p].linear_out.weight)
                      for name, p in zip(hf, order) if p in blocks]
        for name, a, b in pieces:
            out[f"base_model.model.{name}.lora_A.weight"] = a.detach().float().contiguous().clone()
            out[f"base_model.model.{name}.lora_B.weight"] = b.detach().float().contiguous().clone()
        if adapter.magnitude is not None:
            mags = _split_rows(adapter.magnitude.detach().float(), 3 if regroup else len(hf), provider)
            for name, m in zip(hf, [torch.cat(mags, 0)] if regroup else mags):
                out[f"base_model.model.{name}.lora_magnitude_vector"] = m.contiguous().clone()
    return out


def adapter_config(cfg, tensors: Dict[str, torch.Tensor], base_model: str) -> dict:
    modules = sorted({k.split(".")[-3] for k in tensors if k.endswith(".lora_A.weight")})
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_model,
        "r": cfg.peft.dim, "lora_alpha": cfg.peft.alpha, "lora_dropout": cfg.peft.dropout,
        "target_modules": modules, "use_dora": cfg.peft.method == "dora", "use_rslora": False,
        "bias": "none", "fan_in_fan_out": False, "inference_mode": True, "modules_to_save": None,
        "init_lora_weights": True,
    }


def export(adapter_ckpt: str, out_dir: str, base_model: str = "") -> Path:
    """Write ``out_dir``/adapter_config.json + adapter_model.safetensors for ``adapter_ckpt``.
    ``base_model`` goes into ``base_model_name_or_path`` (the HF export of the base)."""
    from safetensors.torch import save_file

    from plugtron.providers.peft.merge import adapted_model, check_new_dir

    out = Path(out_dir)
    check_new_dir(out)
    with adapted_model(adapter_ckpt) as (cfg, provider, model, path):
        tensors = hf_tensors(model, provider)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps(adapter_config(cfg, tensors, base_model), indent=2) + "\n",
                                             encoding="utf-8")
    log.info(f"peft export-hf: {len(tensors)} tensors of {path} -> {out}")
    return out
