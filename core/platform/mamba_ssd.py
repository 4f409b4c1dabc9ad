"""Pure-PyTorch Mamba-2 SSD (state-space duality) scan: the functions Megatron-Core's ``MambaMixer``
imports from ``mamba_ssm`` (``mamba_chunk_scan_combined``, ``mamba_split_conv1d_scan_combined``,
``selective_state_update``), with the same signatures and the same math, for machines without the
CUDA/triton kernels. ``plugtron.platform.cpu_shims_mamba`` installs them; nothing here patches anything.

The SSM per head ``h`` (state ``S`` of shape ``[headdim, d_state]``, group ``g = h // (nheads/ngroups)``)::

    dt_t = softplus(dt_t + dt_bias)            (if dt_softplus), clamped to dt_limit
    S_t  = exp(dt_t * A) * S_{t-1} + dt_t * x_t B_t^T
    y_t  = S_t C_t + D * x_t                   then  y_t *= silu(z_t)  when z is given

``ssd_scan`` computes it chunk by chunk (the SSD algorithm of the Mamba-2 paper): inside a chunk the
recurrence is a masked, decay-weighted ``C B^T`` product; between chunks only the ``[headdim, d_state]``
states are carried. Everything runs in fp32 and the output is cast back to ``x``'s dtype, as the
kernels do. Gradients come from autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from plugtron.platform.mamba_conv_norm import causal_conv1d_fn, gated_rms_norm


def _unsupported(what: str) -> NotImplementedError:
    return NotImplementedError(
        f"{what} is not supported by plugtron's pure-PyTorch Mamba stand-in "
        "(install mamba_ssm and causal_conv1d on a CUDA machine for it)")


def _discretize_dt(dt, dt_bias, dt_softplus, dt_limit):
    dt = dt.float()
    if dt_bias is not None:
        dt = dt + dt_bias.float()
    if dt_softplus:
        dt = F.softplus(dt)
    if dt_limit != (0.0, float("inf")):
        dt = dt.clamp(min=dt_limit[0], max=dt_limit[1])
    return dt


def _heads_from_groups(t: torch.Tensor, nheads: int, dim: int) -> torch.Tensor:
    """``[..., ngroups, n]`` -> ``[..., nheads, n]``: consecutive heads share a group."""
    return t.repeat_interleave(nheads // t.shape[dim], dim=dim)


def ssd_scan(x, dt, A, B, C, chunk_size: int, D=None, z=None, initial_states=None):
    """The chunked scan on already-discretized ``dt`` (fp32). Returns ``(y fp32, final state fp32)``.

    x ``[b, l, h, p]``, dt ``[b, l, h]``, A ``[h]``, B/C ``[b, l, g, n]``, D ``[h]`` or ``[h, p]``,
    z like x, initial_states ``[b, h, p, n]``.
    """
    b, seqlen, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    r, q = h // g, chunk_size  # heads per group (consecutive heads share a group), chunk length
    pad = (-seqlen) % q
    chunks = (seqlen + pad) // q

    def chunked(t, heads):  # [b, l, heads, k] -> [b, g, heads // g, chunks, q, k], padded with zeros
        t = F.pad(t.float(), (0, 0, 0, 0, 0, pad)).permute(0, 2, 1, 3)
        return t.reshape(b, g, heads // g, chunks, q, t.shape[-1])

    # dt = 0 on the padding: no decay, no input, so the final state is unchanged.
    dt = chunked(dt.unsqueeze(-1), h).squeeze(-1)  # [b, g, r, c, q]
    xdt = chunked(x, h) * dt.unsqueeze(-1)  # [b, g, r, c, q, p]
    B, C = chunked(B, g), chunked(C, g)  # [b, g, 1, c, q, n]: shared by the group's heads

    log_decay = torch.cumsum(dt * A.float().reshape(g, r, 1, 1), dim=-1)  # log prod_{j<=i} exp(dt_j A)
    # Inside a chunk: y_i = sum_{j<=i} (C_i . B_j) exp(cum_i - cum_j) dt_j x_j
    causal = torch.ones(q, q, dtype=torch.bool, device=x.device).tril()
    diff = log_decay.unsqueeze(-1) - log_decay.unsqueeze(-2)  # [..., i, j]
    weights = torch.exp(diff.masked_fill(~causal, float("-inf")))
    y = ((C @ B.transpose(-1, -2)) * weights) @ xdt

    # Each chunk's own contribution to the state at its end, then the carry from chunk to chunk.
    to_end = torch.exp(log_decay[..., -1:] - log_decay).unsqueeze(-1)  # [b, g, r, c, q, 1]
    chunk_states = (xdt * to_end).transpose(-1, -2) @ B  # [b, g, r, c, p, n]
    chunk_decay = torch.exp(log_decay[..., -1])[..., None, None]  # [b, g, r, c, 1, 1]
    state = (x.new_zeros(b, g, r, p, n, dtype=torch.float32) if initial_states is None
             else initial_states.float().reshape(b, g, r, p, n))
    carried = []
    for c in range(chunks):
        carried.append(state)
        state = state * chunk_decay[:, :, :, c] + chunk_states[:, :, :, c]
    carried = torch.stack(carried, dim=3)  # [b, g, r, c, p, n]: the state entering each chunk
    y = y + (C @ carried.transpose(-1, -2)) * torch.exp(log_decay).unsqueeze(-1)

    y = y.reshape(b, h, chunks * q, p).permute(0, 2, 1, 3)[:, :seqlen]
    if D is not None:
        y = y + x.float() * (D.float()[:, None] if D.dim() == 1 else D.float())
    if z is not None:
        y = y * F.silu(z.float())
    return y, state.reshape(b, h, p, n)


def mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
                              seq_idx=None, chunk_indices=None, chunk_offsets=None, cu_seqlens=None,
                              dt_softplus=False, dt_limit=(0.0, float("inf")), return_final_states=False,
                              return_varlen_states=False):
    """``mamba_ssm.ops.triton.ssd_combined.mamba_chunk_scan_combined`` (y ``[b, l, h, p]``)."""
    if seq_idx is not None or cu_seqlens is not None or return_varlen_states:
        raise _unsupported("packed/variable-length sequences (seq_idx, cu_seqlens)")
    dt = _discretize_dt(dt, dt_bias, dt_softplus, dt_limit)
    y, final = ssd_scan(x, dt, A, B, C, chunk_size, D=D, z=z, initial_states=initial_states)
    y = y.to(x.dtype)
    return (y, final) if return_final_states else y


def mamba_split_conv1d_scan_combined(zxbcdt, conv1d_weight, conv1d_bias, dt_bias, A, D, chunk_size,
                                     initial_states=None, seq_idx=None, dt_limit=(0.0, float("inf")),
                                     return_final_states=False, activation="silu", rmsnorm_weight=None,
                                     rmsnorm_eps=1e-6, outproj_weight=None, outproj_bias=None, headdim=None,
                                     ngroups=1, norm_before_gate=True):
    """``mamba_ssm``'s fused training path: split ``zxbcdt [b, l, ...]`` into z, x|B|C, dt; causal conv
    + activation on x|B|C; the scan gated by ``silu(z)`` (or a gated RMSNorm with ``rmsnorm_weight``);
    the optional output projection. Returns ``[b, l, d]``."""
    if seq_idx is not None:
        raise _unsupported("packed sequences (seq_idx)")
    nheads = A.shape[0]
    headdim = D.shape[1] if D.dim() == 2 else headdim
    if headdim is None:
        raise ValueError("mamba_split_conv1d_scan_combined: headdim is required when D is per head")
    dim = nheads * headdim
    dstate = (conv1d_weight.shape[0] - dim) // ngroups // 2
    d_nonssm = (zxbcdt.shape[-1] - 2 * dim - 2 * ngroups * dstate - nheads) // 2
    zx0, z, xBC, dt = torch.split(zxbcdt, [2 * d_nonssm, dim, dim + 2 * ngroups * dstate, nheads], dim=-1)
    xBC = causal_conv1d_fn(xBC.transpose(1, 2), conv1d_weight, conv1d_bias, activation=activation).transpose(1, 2)
    x, B, C = torch.split(xBC, [dim, ngroups * dstate, ngroups * dstate], dim=-1)
    b, seqlen = x.shape[:2]
    x = x.reshape(b, seqlen, nheads, headdim)
    B = B.reshape(b, seqlen, ngroups, dstate)
    C = C.reshape(b, seqlen, ngroups, dstate)
    z_heads = z.reshape(b, seqlen, nheads, headdim)
    dt = _discretize_dt(dt, dt_bias, True, dt_limit)
    gate_in_scan = rmsnorm_weight is None
    y, final = ssd_scan(x, dt, A, B, C, chunk_size, D=D, z=z_heads if gate_in_scan else None,
                        initial_states=initial_states)
    y = y.reshape(b, seqlen, dim)
    if not gate_in_scan:
        y = gated_rms_norm(y, rmsnorm_weight, z, rmsnorm_eps, group_size=dim // ngroups,
                           norm_before_gate=norm_before_gate)
    y = y.to(zxbcdt.dtype)
    if d_nonssm > 0:
        x0, z0 = zx0.chunk(2, dim=-1)
        y = torch.cat([F.silu(x0) * z0, y], dim=-1)
    if outproj_weight is not None:
        y = F.linear(y, outproj_weight, outproj_bias)
    return (y, final) if return_final_states else y


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
                           state_batch_indices=None, **unsupported):
    """One decode step of the SSM, updating ``state`` in place (``mamba_ssm``'s
    ``selective_state_update``). state ``[batch, h, p, n]``, x/dt/z ``[b, h, p]``, A ``[h, p, n]``,
    B/C ``[b, g, n]``, D/dt_bias ``[h, p]``; the head dimension may be absent (``[b, d]``, ...)."""
    if any(v is not None for v in unsupported.values()):
        raise _unsupported(f"selective_state_update({', '.join(unsupported)})")
    no_heads = x.dim() == 2
    if no_heads:
        x, dt, z = x.unsqueeze(1), dt.unsqueeze(1), None if z is None else z.unsqueeze(1)
        A, B, C = A.unsqueeze(0), B.unsqueeze(1), C.unsqueeze(1)
        D = None if D is None else D.unsqueeze(0)
        dt_bias = None if dt_bias is None else dt_bias.unsqueeze(0)
    rows = state if state_batch_indices is None else state[state_batch_indices]
    if no_heads:
        rows = rows.unsqueeze(1)
    h = x.shape[1]
    dt = _discretize_dt(dt, dt_bias, dt_softplus, (0.0, float("inf")))
    B, C = _heads_from_groups(B.float(), h, 1), _heads_from_groups(C.float(), h, 1)
    new = rows.float() * torch.exp(A.float() * dt[..., None]) + (dt * x.float())[..., None] * B[:, :, None, :]
    out = torch.einsum("bhpn,bhn->bhp", new, C)
    if D is not None:
        out = out + x.float() * D.float()
    if z is not None:
        out = out * F.silu(z.float())
    new = new.squeeze(1) if no_heads else new
    with torch.no_grad():
        if state_batch_indices is None:
            state.copy_(new)
        else:
            state[state_batch_indices] = new.to(state.dtype)
    out = out.to(x.dtype)
    return out.squeeze(1) if no_heads else out
