"""Copy-free RoPE and SwiGLU for Megatron's local (pure torch) layer spec.

Without Transformer Engine, Megatron-Core computes rotary embeddings and SwiGLU with plain torch ops
whose layout work costs more than their arithmetic on CPU (``benchmarks/throughput_vs_hf.py
--profile``; 53 ``cat`` calls per step of a 6-layer Llama against 29 in the Hugging Face loop):

* RoPE (``rope_utils._apply_rotary_pos_emb_bshd``): ``_rotate_half`` is ``cat((-x2, x1))`` (a negation
  and a copy), the result is ``cat``-ed with the empty non-rotated part (another copy of the whole
  tensor), and in the backward the ``chunk`` becomes a ``cat`` and the ``t[..., :rot_dim]`` slice a
  zero fill plus a copy: ~5.5 passes over q or k forward and ~6.5 backward.
  :class:`RotaryHalves` writes each half of the result in place: 3 passes each way.
* SwiGLU (``MLP.forward``'s ``glu``): ``x_linear + glu_linear_offset`` copies the linear half (the
  offset is 0.0) and the backward of ``torch.chunk`` is a ``cat`` of both halves' gradients.
  :class:`SwiGLU` writes both gradient halves straight into one buffer.

Both compute exactly Megatron's arithmetic (the same products and sums, in the same order), so
results are bit-for-bit those of Megatron's code (``tests/test_cpu_fast_paths.py`` checks forward and
backward with ``torch.equal``). The one exception is the sign of an exact zero: Megatron's ``x_linear
+ 0.0`` turns ``-0.0`` into ``+0.0`` before the product. Cases they do not cover (interleaved or partial
rotary dims, multi-latent attention, clamped or offset GLUs, biases, per-token scales) go to Megatron's
own code unchanged, and so does a compiled graph (the ``compile`` plugin): the ``out=`` writes into
halves of a buffer would break it, and Inductor fuses Megatron's plain ops on its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core.transformer.mlp import MLP


class RotaryHalves(torch.autograd.Function):
    """``t * cos + rotate_half(t) * sin`` (non-interleaved RoPE), written half by half."""

    @staticmethod
    def forward(ctx, t, cos, sin):
        h = t.shape[-1] // 2
        t1, t2 = t[..., :h], t[..., h:]
        c1, c2, s1, s2 = cos[..., :h], cos[..., h:], sin[..., :h], sin[..., h:]
        out = torch.empty_like(t, memory_format=torch.contiguous_format)
        o1, o2 = out[..., :h], out[..., h:]
        # Megatron: t1*c1 + (-t2)*s1 and t2*c2 + t1*s2; a + (-b) is a - b exactly
        torch.mul(t1, c1, out=o1)
        o1.sub_(t2 * s1)
        torch.mul(t2, c2, out=o2)
        o2.add_(t1 * s2)
        ctx.save_for_backward(cos, sin)
        return out

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        h = grad.shape[-1] // 2
        g1, g2 = grad[..., :h], grad[..., h:]
        c1, c2, s1, s2 = cos[..., :h], cos[..., h:], sin[..., :h], sin[..., h:]
        dt = torch.empty_like(grad, memory_format=torch.contiguous_format)
        d1, d2 = dt[..., :h], dt[..., h:]
        # autograd of Megatron's form: g*cos + (g*sin rotated back: [g2*s2, -(g1*s1)])
        torch.mul(g1, c1, out=d1)
        d1.add_(g2 * s2)
        torch.mul(g2, c2, out=d2)
        d2.sub_(g1 * s1)
        return dt, None, None


def fast_rope_bshd(original):
    """A drop-in for ``rope_utils._apply_rotary_pos_emb_bshd`` that takes :class:`RotaryHalves` where
    it computes the same function and calls ``original`` elsewhere."""

    def apply(t, freqs, rotary_interleaved=False, multi_latent_attention=False, mscale=1.0):
        rot_dim = freqs.shape[-1]
        if (rotary_interleaved or multi_latent_attention or rot_dim != t.shape[-1] or rot_dim % 2
                or torch.compiler.is_compiling()):  # compiled (the compile plugin): Inductor fuses Megatron's code
            return original(t, freqs, rotary_interleaved=rotary_interleaved,
                            multi_latent_attention=multi_latent_attention, mscale=mscale)
        # cos/sin exactly as Megatron forms them (a [s, 1, 1, d] table: cheap)
        cos = (torch.cos(freqs) * mscale).to(t.dtype)
        sin = (torch.sin(freqs) * mscale).to(t.dtype)
        return RotaryHalves.apply(t, cos, sin)

    apply.plugtron_fast_path = True
    apply.original = original
    return apply


def install_fast_rope() -> None:
    """Route Megatron's unfused RoPE through :func:`fast_rope_bshd` (idempotent; process-wide, as the
    function is a module global that ``apply_rotary_pos_emb`` looks up on every call)."""
    from megatron.core.models.common.embeddings import rope_utils

    current = rope_utils._apply_rotary_pos_emb_bshd
    if not getattr(current, "plugtron_fast_path", False):
        rope_utils._apply_rotary_pos_emb_bshd = fast_rope_bshd(current)


class SwiGLU(torch.autograd.Function):
    """``silu(x[..., :f]) * x[..., f:]`` with both input-gradient halves written into one buffer."""

    @staticmethod
    def forward(ctx, x):
        f = x.shape[-1] // 2
        gate, linear = x[..., :f], x[..., f:]
        act = F.silu(gate)
        ctx.save_for_backward(x, act)
        return act * linear

    @staticmethod
    def backward(ctx, grad):
        x, act = ctx.saved_tensors
        f = x.shape[-1] // 2
        gate, linear = x[..., :f], x[..., f:]
        dx = torch.empty_like(x, memory_format=torch.contiguous_format)
        # autograd of Megatron's form: d(linear) = grad * act; d(gate) = silu'(gate) * (grad * linear)
        torch.mul(grad, act, out=dx[..., f:])
        torch.ops.aten.silu_backward.grad_input(grad * linear, gate, grad_input=dx[..., :f])
        return dx


class SwiGLUMLP(MLP):
    """Megatron's ``MLP`` whose gated-SiLU activation is :class:`SwiGLU` where that is the same
    function (no bias, no clamp, offset 0, no per-token scale, no fused or TE activation)."""

    def _plain_swiglu(self) -> bool:
        c = self.config
        return (
            c.gated_linear_unit
            and self.activation_func is F.silu
            and not c.bias_activation_fusion
            and not c.use_te_activation_func
            and c.activation_func_clamp_value is None
            and c.glu_linear_offset == 0.0
            and not c.add_bias_linear
        )

    def forward(self, hidden_states, per_token_scale=None, **kwargs):
        if per_token_scale is not None or not self._plain_swiglu() or torch.compiler.is_compiling():
            return super().forward(hidden_states, per_token_scale=per_token_scale, **kwargs)
        intermediate, _ = self.linear_fc1(hidden_states)  # no bias (add_bias_linear is off)
        return self.linear_fc2(SwiGLU.apply(intermediate))


def use_fast_mlp(model: torch.nn.Module) -> int:
    """Make each plain ``MLP`` in ``model`` a :class:`SwiGLUMLP` (same attributes and parameters; it
    behaves as ``MLP`` for every other activation). Done on the built model rather than in the layer
    spec because ``TransformerLayer`` passes ``MLP`` its tensor-parallel group only when the spec names
    ``MLP`` itself. Returns how many modules were switched."""
    switched = 0
    for module in model.modules():
        if type(module) is MLP:
            module.__class__ = SwiGLUMLP
            switched += 1
    return switched
