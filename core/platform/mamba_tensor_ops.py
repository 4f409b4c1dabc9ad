"""Pure-PyTorch versions of Megatron-Core's triton ``tensor_ops`` (row copies for dynamic-batching
inference), with the same semantics. ``megatron.core.ssm.mamba_mixer`` imports that module at import
time, so without triton the Mamba layers could not even be imported; ``cpu_shims_mamba`` registers this
module under Megatron's name when ``triton`` is not installed.
"""

from __future__ import annotations

from typing import Optional

import torch


def tensor_get_slice_after(input_tensor, output_tensor, pos_on_device, check_bounds: bool = False):
    """``output_tensor[:k] = input_tensor[pos:]`` for as many rows ``k`` as both have."""
    pos = int(pos_on_device[0])
    if check_bounds and not 0 <= pos <= input_tensor.shape[0]:
        raise ValueError("pos_on_device must be between 0 and input_tensor.shape[0]")
    rows = max(0, min(input_tensor.shape[0] - pos, output_tensor.shape[0]))
    output_tensor[:rows] = input_tensor[pos:pos + rows]


def tensor_merge(tensor_a, tensor_b, pos_on_device, output_tensor: Optional[torch.Tensor] = None,
                 check_bounds: bool = False):
    """``output[:pos] = a[:pos]``, ``output[pos:pos + len(b)] = b`` (in place on ``a`` by default)."""
    pos = int(pos_on_device[0])
    if check_bounds and not 0 <= pos <= tensor_a.shape[0]:
        raise ValueError("pos_on_device must be between 0 and tensor_a batch size")
    out = tensor_a if output_tensor is None else output_tensor
    if out is not tensor_a:
        out[:pos] = tensor_a[:pos]
    rows = max(0, min(tensor_b.shape[0], out.shape[0] - pos))
    out[pos:pos + rows] = tensor_b[:rows]


def tensor_masked_update(states: torch.Tensor, idx: torch.Tensor, new_states: torch.Tensor):
    """``states[idx[i]] = new_states[i]`` for every ``idx[i] != -1``."""
    if states.shape[1:] != new_states.shape[1:]:
        raise ValueError("tensor_masked_update: state dimensions must match")
    keep = idx >= 0
    states[idx[keep].long()] = new_states[keep].to(states.dtype)
