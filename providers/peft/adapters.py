"""The adapter modules and how they attach to Megatron's parallel linear layers.

An adapted layer keeps its own parameters and names (``linear_qkv.weight``: the base checkpoint
loads as is) and gains a child ``peft_adapter``; its class becomes a subclass of its own class
with ``forward`` and ``sharded_state_dict`` extended (``adapt``), so Megatron code that checks
``isinstance(layer, ColumnParallelLinear)`` still sees what it expects.

Tensor parallelism follows the wrapped layer. Column-parallel base (output split over TP, input
whole): A is column-parallel with its output gathered (``dim`` split), B column-parallel like the
base, so each rank adds its own output rows. Row-parallel base (input split, output reduced): A is
row-parallel (its output all-reduced: one extra all-reduce of ``[tokens, dim]`` per layer), B
column-parallel with its output gathered. Megatron's own layers carry the autograd collectives.

Sequence parallelism (``model.sequence_parallel``): a column-parallel base receives this rank's slice of
the sequence and gathers it inside; the adapter gathers it too (one extra all-gather of ``[s, b, h]`` per
adapted layer), and since its A layer already all-reduces the input gradient over TP, the gather's
backward only keeps this rank's slice. A row-parallel base reduce-scatters its output to a sequence
slice; the adapter's output (whole on every rank) is cut to the same slice (backward: all-gather).
"""

from __future__ import annotations

import copy
import math
from typing import List, Optional

import torch
from megatron.core import parallel_state as ps
from megatron.core.tensor_parallel import ColumnParallelLinear, RowParallelLinear

ADAPTER = "peft_adapter"


def _init(method: str):
    if method == "zero":
        return torch.nn.init.zeros_
    if method == "kaiming":
        return lambda w: torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    return torch.nn.init.xavier_normal_


def adapter_config(base_config):
    """The wrapped layer's config for the adapter's layers: no sequence parallelism (the adapter
    sees the layer's own input), real initialization, on the CPU from the whole matrix (so every
    TP layout starts from the same adapters; the chunks move to the GPU afterwards)."""
    cfg = copy.copy(base_config)
    cfg.sequence_parallel = False
    cfg.perform_initialization = True
    cfg.use_cpu_initialization = True
    cfg.gradient_accumulation_fusion = False
    return cfg


class LowRank(torch.nn.Module):
    """``B(A(x))`` for one output block (a whole layer, or q/k/v or gate/up of a fused one)."""

    def __init__(self, config, in_features: int, out_features: int, dim: int, row_parallel: bool,
                 a_init: str, b_init: str):
        super().__init__()
        if row_parallel:
            self.linear_in = RowParallelLinear(in_features, dim, config=config, init_method=_init(a_init), bias=False,
                                               input_is_parallel=True, skip_bias_add=True)
            self.linear_out = ColumnParallelLinear(dim, out_features, config=config, init_method=_init(b_init),
                                                   bias=False, gather_output=True)
        else:
            self.linear_in = ColumnParallelLinear(in_features, dim, config=config, init_method=_init(a_init),
                                                  bias=False, gather_output=True)
            self.linear_out = ColumnParallelLinear(dim, out_features, config=config, init_method=_init(b_init),
                                                   bias=False, gather_output=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_out(self.linear_in(x)[0])[0]


def _gather_rows(t: torch.Tensor) -> torch.Tensor:
    """All TP ranks' row blocks of ``t`` concatenated (no gradient: used for norms and merging)."""
    n = ps.get_tensor_model_parallel_world_size()
    if n == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(n)]
    torch.distributed.all_gather(parts, t.contiguous(), group=ps.get_tensor_model_parallel_group())
    return torch.cat(parts, 0)


class Adapter(torch.nn.Module):
    """The adapter of one layer: LoRA, DoRA (``magnitude`` set) or canonical LoRA (several blocks).

    ``blocks`` maps a part name (``whole`` for the whole layer; ``q``/``k``/``v``, ``gate``/``up``) to
    its ``LowRank``; ``combine`` puts the blocks' outputs into the layer's output layout."""

    def __init__(self, blocks: dict, combine, scale: float, dropout: float, dropout_position: str,
                 row_parallel: bool):
        super().__init__()
        self.blocks = torch.nn.ModuleDict(blocks)
        self.combine, self.scale, self.row_parallel = combine, scale, row_parallel
        self.sequence_parallel = False  # set by ``adapt`` from the wrapped layer
        self.dropout = torch.nn.Dropout(dropout) if dropout > 0 else torch.nn.Identity()
        self.dropout_position = dropout_position
        self.magnitude: Optional[torch.nn.Parameter] = None

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """``scale * B A x`` in the layer's output layout."""
        from megatron.core.tensor_parallel import gather_from_sequence_parallel_region, scatter_to_sequence_parallel_region

        if self.sequence_parallel and not self.row_parallel:  # collective over TP: the whole sequence
            x = gather_from_sequence_parallel_region(x, tensor_parallel_output_grad=False)
        if self.dropout_position == "pre":
            x = self.dropout(x)
        out = self.combine({name: block(x) for name, block in self.blocks.items()})
        out = out * self.scale
        out = self.dropout(out) if self.dropout_position == "post" else out
        if self.sequence_parallel and self.row_parallel:  # this rank's slice, as the layer's reduce-scatter gives
            out = scatter_to_sequence_parallel_region(out)
        return out

    def delta_weight(self) -> torch.Tensor:
        """``scale * B A`` as this rank's shard of the layer's weight (same shape)."""
        def full_b(block):  # row-parallel: B's rows are split although the layer's output is whole
            w = block.linear_out.weight
            return _gather_rows(w) if self.row_parallel else w

        out = self.combine({name: (full_b(b) @ (b.linear_in.weight if self.row_parallel else _gather_rows(b.linear_in.weight))).t()
                            for name, b in self.blocks.items()}).t()
        return out.mul_(self.scale)  # a new tensor: scaled in place, so a merge holds one weight-sized delta

    def weight_norm(self, weight: torch.Tensor) -> torch.Tensor:
        """DoRA: the norm of each output row of ``W + scale B A`` over the whole input (a TP
        all-reduce for a row-parallel layer). Detached, as the DoRA paper (sec. 4.3) and HF PEFT do."""
        with torch.no_grad():
            # the same sums as (W + sBA)^2, built in the delta's own (new) tensor: one weight-sized
            # temporary besides W, which a streamed merge's memory bound counts on
            sq = self.delta_weight().float().add_(weight.float()).pow_(2).sum(1)
            if self.row_parallel and ps.get_tensor_model_parallel_world_size() > 1:
                torch.distributed.all_reduce(sq, group=ps.get_tensor_model_parallel_group())
            return sq.sqrt().to(weight.dtype)


class AdaptedLinear:
    """Mixed into an adapted layer's class (see ``adapt``)."""

    def forward(self, input_, *args, **kwargs):
        out, bias = super().forward(input_, *args, **kwargs)
        adapter = getattr(self, ADAPTER)
        if adapter.magnitude is None:  # LoRA, canonical LoRA
            return out + adapter.delta(input_), bias
        # DoRA: m / |W + sBA| * (W x + sBA x); a bias added inside the layer stays outside the scaling
        inner = self.bias if (self.bias is not None and not self.skip_bias_add) else None
        base = out - inner if inner is not None else out
        scaled = (adapter.magnitude / adapter.weight_norm(self.weight)) * (base + adapter.delta(input_))
        return (scaled + inner if inner is not None else scaled), bias

    def sharded_state_dict(self, prefix="", sharded_offsets=(), metadata=None):
        from megatron.core.transformer.utils import make_sharded_tensors_for_checkpoint, sharded_state_dict_default

        adapter = self._modules.pop(ADAPTER)  # the layer's own tensors under its own keys
        try:
            sd = super().sharded_state_dict(prefix, sharded_offsets, metadata)
        finally:
            self._modules[ADAPTER] = adapter
        for name, block in adapter.blocks.items():
            for side in ("linear_in", "linear_out"):
                sd.update(sharded_state_dict_default(getattr(block, side), f"{prefix}{ADAPTER}.blocks.{name}.{side}.",
                                                     sharded_offsets, metadata))
        if adapter.magnitude is not None:
            # one value per output row: split over TP like a column-parallel layer's rows; a TP replica
            # on a row-parallel layer (its output is whole). The TP group must be passed with the DP
            # group: Megatron falls back to its own groups only when both are missing, and without
            # it every TP rank would claim TP rank 0's shard or the main replica (a failed save).
            sd.update(make_sharded_tensors_for_checkpoint({"magnitude": adapter.magnitude}, f"{prefix}{ADAPTER}.",
                                                          {} if adapter.row_parallel else {"magnitude": 0},
                                                          sharded_offsets, tp_group=self.tp_group,
                                                          dp_cp_group=(metadata or {}).get("dp_cp_group")))
        return sd


def adapt(layer, adapter: Adapter, dora: bool) -> None:
    """Attach ``adapter`` to ``layer`` in place (its base parameters frozen)."""
    for p in layer.parameters():
        p.requires_grad_(False)
    layer.add_module(ADAPTER, adapter)
    adapter.sequence_parallel = bool(getattr(layer, "sequence_parallel", False)) and \
        ps.get_tensor_model_parallel_world_size() > 1
    if dora:
        from megatron.core.tensor_parallel.layers import set_tensor_model_parallel_attributes

        if layer.weight.is_meta:  # a model built on the meta device (a streamed merge) loads m from its checkpoint
            norm = torch.empty(layer.weight.shape[0], dtype=layer.weight.dtype)
        else:
            with torch.no_grad():
                norm = adapter.weight_norm(layer.weight)
        adapter.magnitude = torch.nn.Parameter(norm.clone())  # B = 0 at the start: m = |W|, the output unchanged
        set_tensor_model_parallel_attributes(adapter.magnitude, is_parallel=not adapter.row_parallel, dim=0, stride=1)
        # a row-parallel layer's m is a TP replica; with sequence parallelism it scales this rank's slice
        # of the sequence only, so its gradient is partial: finalize_model_grads sums it over TP
        adapter.magnitude.sequence_parallel = adapter.row_parallel and adapter.sequence_parallel
    base = type(layer)
    if base not in _ADAPTED_CLASSES:
        _ADAPTED_CLASSES[base] = type(f"Adapted{base.__name__}", (AdaptedLinear, base), {})
    layer.__class__ = _ADAPTED_CLASSES[base]


_ADAPTED_CLASSES: dict = {}  # one adapted subclass per layer class


def unadapt(layer) -> None:
    """Remove the adapter (after merging it into the weight): the plain layer again."""
    delattr(layer, ADAPTER)
    layer.__class__ = [c for c in type(layer).__mro__[1:] if not issubclass(c, AdaptedLinear)][0]


def adapted_layers(model) -> List[tuple]:
    """``(path, layer)`` of every adapted layer in ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, AdaptedLinear)]
