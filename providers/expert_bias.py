"""Expert MLPs with biases on Megatron-Core's local layer spec.

Megatron-Core 0.16's ``MLP.forward`` adds an expert's ``linear_fc2`` bias, scaled by the token's
routing weight, *in place* to the layer's output (``output += bias * per_token_scale``,
transformer/mlp.py). That output is a view made by the linear layer's autograd function, so the first
backward fails with an autograd error on CPU and GPU alike (Transformer Engine's grouped experts take
another path). ``BiasedExpertMLP`` computes the same function out of place: the expert's output without
the scale, plus the bias, times the routing weight - ``p * (act(x W1 + b1) W2 + b2)``, which is what
Megatron's ``(p * act(x W1 + b1)) W2 + p * b2`` equals by linearity (and how Hugging Face's gpt-oss
experts compute it). Installed on a built model by :func:`use_biased_expert_mlp`.
"""

from __future__ import annotations

import torch
from megatron.core.transformer.mlp import MLP


class BiasedExpertMLP(MLP):
    """Megatron's ``MLP`` whose routing-weighted output bias is added out of place."""

    def forward(self, hidden_states, per_token_scale=None, **kwargs):
        if per_token_scale is None or not self.config.add_bias_linear:
            return super().forward(hidden_states, per_token_scale=per_token_scale, **kwargs)
        output, bias = super().forward(hidden_states, per_token_scale=None, **kwargs)
        if bias is not None:
            output = output + bias
        scale = per_token_scale.unsqueeze(-1)
        return (output * scale).to(output.dtype), None


def use_biased_expert_mlp(model: torch.nn.Module) -> int:
    """Make each expert ``MLP`` of ``model`` (plain or plugtron's fast-path subclass) a
    :class:`BiasedExpertMLP` when the model has linear biases; returns how many were switched."""
    from megatron.core.transformer.moe.experts import SequentialMLP

    switched = 0
    for experts in model.modules():
        if not isinstance(experts, SequentialMLP):
            continue
        for module in experts.local_experts:
            if isinstance(module, MLP) and module.config.add_bias_linear:
                module.__class__ = BiasedExpertMLP
                switched += 1
    return switched
