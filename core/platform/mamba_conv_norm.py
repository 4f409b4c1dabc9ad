"""Pure-PyTorch stand-ins for the ``causal_conv1d`` kernels and ``mamba_ssm``'s gated RMSNorm, same
signatures and math, for machines without them (see ``plugtron.platform.mamba_ssd``).

- ``causal_conv1d_fn``: depthwise conv over ``[batch, dim, seqlen]``, each output seeing only the
  current and the ``width - 1`` previous positions (zeros, or ``initial_states``, before the start).
- ``causal_conv1d_update``: the same for new tokens during decoding, shifting ``conv_state`` in place.
- ``GatedRMSNorm``: RMSNorm over groups of ``group_size`` channels, gated by ``silu(z)`` before
  (``norm_before_gate=False``) or after the normalisation.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def _activate(out: torch.Tensor, activation: Optional[str]) -> torch.Tensor:
    if activation in ("silu", "swish"):
        return F.silu(out)
    if activation is not None:
        raise ValueError(f"causal_conv1d: activation must be None, 'silu' or 'swish', got {activation!r}")
    return out


def causal_conv1d_fn(x, weight, bias=None, seq_idx=None, initial_states=None, return_final_states=False,
                     final_states_out=None, activation=None):
    """x ``[b, d, l]``, weight ``[d, w]``, bias ``[d]``, initial_states ``[b, d, w-1]`` -> ``[b, d, l]``
    (and the last ``w - 1`` inputs, the next call's initial states, with ``return_final_states``)."""
    if seq_idx is not None:  # packed rows: refused for Mamba without TE before the build (MambaKind)
        raise NotImplementedError("causal_conv1d_fn(seq_idx=...): packed sequences are not supported by "
                                  "plugtron's pure-PyTorch Mamba stand-in")
    width = weight.shape[-1]
    history = (x.new_zeros(x.shape[0], x.shape[1], width - 1) if initial_states is None
               else initial_states.to(x.dtype))
    padded = torch.cat([history, x], dim=-1)
    out = _activate(F.conv1d(padded, weight.unsqueeze(1), bias, groups=x.shape[1]), activation)
    if not return_final_states:
        return out
    final = padded[..., padded.shape[-1] - (width - 1):]
    if final_states_out is not None:
        final_states_out.copy_(final)
        final = final_states_out
    return out, final


def causal_conv1d_update(x, conv_state, weight, bias=None, activation=None, cache_seqlens=None,
                         conv_state_indices=None):
    """x ``[b, d]`` or ``[b, d, l]``; conv_state ``[batch, d, state_len >= w - 1]`` is shifted left by ``l``
    and gets the new inputs at its end, in place (rows ``conv_state_indices`` when given)."""
    if cache_seqlens is not None:  # only Megatron's dynamic-batching inference engine passes it; plugtron's generate does not
        raise NotImplementedError("causal_conv1d_update(cache_seqlens=...): circular conv states are not "
                                  "supported by plugtron's pure-PyTorch Mamba stand-in")
    single = x.dim() == 2
    if single:
        x = x.unsqueeze(-1)
    width, seqlen = weight.shape[-1], x.shape[-1]
    rows = conv_state if conv_state_indices is None else conv_state[conv_state_indices]
    padded = torch.cat([rows.to(x.dtype), x], dim=-1)  # [b, d, state_len + l]
    window = padded[..., padded.shape[-1] - (width - 1 + seqlen):]
    out = _activate(F.conv1d(window, weight.unsqueeze(1), bias, groups=x.shape[1]), activation)
    new_state = padded[..., seqlen:].to(conv_state.dtype)
    with torch.no_grad():
        if conv_state_indices is None:
            conv_state.copy_(new_state)
        else:
            conv_state[conv_state_indices] = new_state
    return out.squeeze(-1) if single else out


def gated_rms_norm(x, weight, z=None, eps=1e-6, group_size=None, norm_before_gate=True, bias=None):
    """RMSNorm of ``x`` over groups of ``group_size`` channels (all by default) times ``weight``, gated
    by ``silu(z)``; computed in fp32, returned in ``x``'s dtype."""
    dtype = x.dtype
    x = x.float()
    gate = None if z is None else F.silu(z.float())
    if gate is not None and not norm_before_gate:
        x = x * gate
    size = group_size or x.shape[-1]
    grouped = x.reshape(*x.shape[:-1], x.shape[-1] // size, size)
    grouped = grouped * torch.rsqrt(grouped.pow(2).mean(dim=-1, keepdim=True) + eps)
    out = grouped.reshape(x.shape) * weight.float()
    if bias is not None:
        out = out + bias.float()
    if gate is not None and norm_before_gate:
        out = out * gate
    return out.to(dtype)


class GatedRMSNorm(nn.Module):
    """``mamba_ssm.ops.triton.layernorm_gated.RMSNorm``: ``forward(x, z=None)``, weight initialised to ones."""

    def __init__(self, hidden_size, eps=1e-5, group_size=None, norm_before_gate=True, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.group_size = group_size
        self.norm_before_gate = norm_before_gate
        self.weight = nn.Parameter(torch.ones(hidden_size, device=device, dtype=dtype))
        self.register_parameter("bias", None)

    def forward(self, x, z=None):
        return gated_rms_norm(x, self.weight, z, self.eps, self.group_size, self.norm_before_gate, self.bias)
