"""``apply_peft``: freeze a built model and attach adapters to the selected linear layers (the
``peft`` plugin's ``transform_model``; merge and export rebuild the same adapters)."""

from __future__ import annotations

import logging
import re
import zlib
from typing import Dict, List, Tuple

import torch

from plugtron import distributed
from plugtron.providers.peft import targets
from plugtron.providers.peft.adapters import Adapter, LowRank, adapt, adapter_config

log = logging.getLogger("plugtron")


def adaptable(chunk) -> List[Tuple[str, torch.nn.Module]]:
    """``(path, layer)`` of the chunk's adaptable linear layers, the path with the *global* layer
    number (``decoder.layers.5...`` on any pipeline stage), so patterns mean the same everywhere.
    Experts of MoE layers are not adaptable. ``ValueError`` for a layer that is not Megatron's local one."""
    from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear

    out = []
    for name, module in chunk.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf not in targets.MEGATRON or ".experts." in name:
            continue
        if not isinstance(module, (ColumnParallelLinear, RowParallelLinear)):
            raise ValueError(f"peft: {name} is a {type(module).__name__}; adapters wrap Megatron's local parallel "
                             "linear layers (set model.transformer_impl: local)")
        out.append((_global_path(chunk, name), module))
    return out


def _global_path(chunk, name: str) -> str:
    m = re.match(r"(.*\.layers\.)(\d+)(\..*)", name)
    if not m:
        return name
    layer = chunk.get_submodule(m.group(1) + m.group(2))
    number = getattr(layer, "layer_number", None)  # 1-based, global (Megatron's TransformerLayer)
    return f"{m.group(1)}{number - 1 if number else m.group(2)}{m.group(3)}"


def _sizes(provider) -> Dict[str, int]:
    nq = provider.num_attention_heads
    ng = provider.num_query_groups or nq
    hd = provider.kv_channels or provider.hidden_size // nq
    return {"nq": nq, "ng": ng, "hd": hd, "ffn": provider.ffn_hidden_size}


def _combine(leaf: str, parts, provider, tp: int):
    """Blocks' outputs -> the layer's output layout (this rank's shard)."""
    if not parts:
        return lambda d: d["whole"]
    s = _sizes(provider)
    if leaf == "linear_qkv":
        ng, per, hd = s["ng"] // tp, s["nq"] // s["ng"], s["hd"]
        widths = {"q": per * hd, "k": hd, "v": hd}

        def qkv(d):
            any_t = next(iter(d.values()))
            lead = any_t.shape[:-1]
            pieces = [d[p].reshape(*lead, ng, widths[p]) if p in d else any_t.new_zeros(*lead, ng, widths[p])
                      for p in ("q", "k", "v")]
            return torch.cat(pieces, -1).reshape(*lead, ng * (per + 2) * hd)
        return qkv
    half = s["ffn"] // tp

    def fc1(d):
        any_t = next(iter(d.values()))
        return torch.cat([d[p] if p in d else any_t.new_zeros(*any_t.shape[:-1], half) for p in ("gate", "up")], -1)
    return fc1


def _part_width(leaf: str, part: str, provider) -> int:
    s = _sizes(provider)
    return {"q": s["nq"] * s["hd"], "k": s["ng"] * s["hd"], "v": s["ng"] * s["hd"],
            "gate": s["ffn"], "up": s["ffn"]}[part]


def _build_adapter(peft, provider, layer, leaf: str, parts) -> Adapter:
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import RowParallelLinear

    tp = ps.get_tensor_model_parallel_world_size()
    row = isinstance(layer, RowParallelLinear)
    cfg = adapter_config(layer.config)
    a, b = peft.lora_A_init_method, peft.lora_B_init_method
    if parts:
        blocks = {p: LowRank(cfg, layer.input_size, _part_width(leaf, p, provider), peft.dim, row, a, b) for p in sorted(parts)}
    else:
        blocks = {"whole": LowRank(cfg, layer.input_size, layer.output_size, peft.dim, row, a, b)}
    return Adapter(blocks, _combine(leaf, parts, provider, tp), peft.alpha / peft.dim, peft.dropout,
                   peft.dropout_position, row)


def apply_peft(peft, provider, chunks, seed: int = 0) -> Dict[str, int]:
    """Collective (one tiny all-reduce: a pattern may match on another pipeline stage only).
    Freeze every parameter of ``chunks``, attach adapters where ``peft`` selects, return counts.
    Each layer's adapters start from ``seed`` and the layer's global path alone, so every TP/PP
    layout starts from the same adapters (and the run's random streams are left untouched)."""
    found = [adaptable(c) for c in chunks]
    paths = [p for f in found for p, _ in f]
    chosen, unmatched = targets.select(paths, list(peft.target_modules), list(peft.exclude_modules),
                                       peft.method == "canonical_lora")
    matched_somewhere = distributed.any_rank(*[t not in unmatched for t in peft.target_modules])
    for target, ok in zip(peft.target_modules, matched_somewhere):
        if not ok:
            names = sorted({p.rsplit(".", 1)[-1] for p in paths})
            raise ValueError(targets.no_match_message(target, names, paths))
    if not any(distributed.any_rank(bool(chosen))):
        raise ValueError("peft.exclude_modules: removes every module target_modules selects; nothing would train")
    for chunk in chunks:
        for p in chunk.parameters():
            p.requires_grad_(False)
    for f in found:
        for path, layer in f:
            if path in chosen:
                leaf = path.rsplit(".", 1)[-1]
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed + zlib.crc32(path.encode()))
                    adapter = _build_adapter(peft, provider, layer, leaf, chosen[path])
                adapt(layer, adapter, dora=peft.method == "dora")
    trainable = sum(p.numel() for c in chunks for p in c.parameters() if p.requires_grad)
    total = sum(p.numel() for c in chunks for p in c.parameters())
    return {"adapted_layers": len([p for p in paths if p in chosen]), "trainable": trainable, "total": total}
