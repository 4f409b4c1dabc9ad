"""OLMo 2 providers and the two pieces of its layer that Megatron-Core 0.16 has no module for.

OLMo 2 is a Llama layout (RoPE, RMSNorm, SwiGLU, no biases, untied embeddings) with two changes:

- *Post-sublayer norms*: no norm before attention or the MLP; each sublayer's output is normalised
  before it is added to the residual, ``h = x + norm(attn(x))`` (HF ``post_attention_layernorm``
  and ``post_feedforward_layernorm``). Megatron's ``TransformerLayer`` only has pre-norm slots, so
  the norm lives in the bias-dropout-add slot, which is exactly where the residual is added:
  :class:`PostNormResidualAdd` (``self_attn_bda.norm``, ``mlp_bda.norm``), and the pre-norm slots
  are identities.
- *QK norm over the whole projections*: HF's ``q_norm``/``k_norm`` are RMSNorms over all heads of
  ``q_proj``/``k_proj`` (size heads x head_dim), not per head as Megatron's ``qk_layernorm``.
  :class:`WholeProjectionRMSNorm` takes Megatron's per-head ``[s, b, heads, head_dim]`` query or key
  and normalises over heads and head_dim together; under tensor parallelism each rank holds some
  heads, so the sum of squares is all-reduced over the TP group (differentiably: the backward is
  an all-reduce too, since every rank's output depends on every rank's input).

Sizes: the released ``allenai/OLMo-2-1124-7B`` and ``-13B`` config.json files (vocabulary 100352,
4096-token context, RoPE base 500000, RMSNorm eps 1e-6, multi-head attention).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from plugtron.providers.llama import LlamaProvider


class WholeProjectionRMSNorm(torch.nn.Module):
    """RMSNorm over every head of a query or key projection (``heads="query"`` or ``"key"``),
    built by Megatron's attention with the per-head ``hidden_size`` it gives q/k norms."""

    def __init__(self, config, hidden_size: int, eps: float = 1e-6, heads: str = "query"):
        super().__init__()
        from megatron.core import parallel_state as ps
        from megatron.core.tensor_parallel import set_tensor_model_parallel_attributes

        tp = ps.get_tensor_model_parallel_world_size()
        total = config.num_attention_heads if heads == "query" else (config.num_query_groups or config.num_attention_heads)
        if total % tp:
            # Megatron replicates key heads when there are fewer than TP ranks: the sum over ranks would count them twice.
            raise ValueError(f"model.num_query_groups: OLMo 2's whole-projection QK norm needs the {heads} heads ({total}) "
                             f"to divide over tensor_model_parallel_size={tp}")
        self.head_dim, self.eps = hidden_size, eps
        self.full_size = total * hidden_size
        self.weight = torch.nn.Parameter(torch.ones(total // tp * hidden_size, dtype=config.params_dtype))
        set_tensor_model_parallel_attributes(self.weight, True, 0, 1)  # rank r holds heads r*n/tp ...

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from megatron.core import parallel_state as ps

        dtype, x32 = x.dtype, x.float()
        sumsq = x32.pow(2).sum(dim=(-2, -1), keepdim=True)
        if ps.get_tensor_model_parallel_world_size() > 1:
            from torch.distributed.nn.functional import all_reduce

            sumsq = all_reduce(sumsq, group=ps.get_tensor_model_parallel_group())
        normed = x32 * torch.rsqrt(sumsq / self.full_size + self.eps)
        return (self.weight.float().view(-1, self.head_dim) * normed).to(dtype)

    def sharded_state_dict(self, prefix: str = "", sharded_offsets=(), metadata=None):
        from megatron.core.transformer.utils import make_sharded_tensors_for_checkpoint

        return make_sharded_tensors_for_checkpoint(self.state_dict(prefix="", keep_vars=True), prefix, {"weight": 0},
                                                   sharded_offsets)


class PostNormResidualAdd(torch.nn.Module):
    """A bias-dropout-add that normalises the sublayer output first: Megatron calls the bda slot as
    ``bda(training, fused)(output_with_bias, residual, dropout_p)``."""

    def __init__(self, norm_spec, config):
        super().__init__()
        from megatron.core.transformer.spec_utils import build_module

        self.norm = build_module(norm_spec, config=config, hidden_size=config.hidden_size, eps=config.layernorm_epsilon)

    def forward(self, training: bool, fused: bool):
        from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add

        add = get_bias_dropout_add(training, fused)

        def apply(output_with_bias, residual, prob):
            out, bias = output_with_bias
            if bias is not None:
                out = out + bias
            return add((self.norm(out), None), residual, prob)

        return apply


def post_norm_spec(local_spec, config):
    """``local_spec`` (Megatron's local GPT layer spec, changed in place and returned) as OLMo 2's layer."""
    from megatron.core.transformer.identity_op import IdentityOp
    from megatron.core.transformer.spec_utils import ModuleSpec

    layer = local_spec.submodules
    norm = layer.input_layernorm
    layer.input_layernorm = layer.pre_mlp_layernorm = IdentityOp
    layer.self_attn_bda = ModuleSpec(module=PostNormResidualAdd, params={"norm_spec": norm, "config": config})
    layer.mlp_bda = ModuleSpec(module=PostNormResidualAdd, params={"norm_spec": norm, "config": config})
    layer.sharded_state_dict_keys_map = {}
    attn = layer.self_attention.submodules
    attn.q_layernorm = ModuleSpec(module=WholeProjectionRMSNorm, params={"heads": "query"})
    attn.k_layernorm = ModuleSpec(module=WholeProjectionRMSNorm, params={"heads": "key"})
    return local_spec


@dataclasses.dataclass
class OLMo2Provider(LlamaProvider):
    """OLMo 2. Always Megatron's local layers (Transformer Engine's spec fuses the pre-norms this
    layout does not have); ``qk_layernorm`` is the whole-projection norm above."""

    qk_layernorm: bool = True
    rotary_base: int = 500000
    layernorm_epsilon: float = 1e-6
    seq_length: int = 4096
    vocab_size: Optional[int] = 100352

    def layer_spec(self):
        from megatron.core.models.gpt import gpt_layer_specs as specs

        from plugtron.providers.gpt import with_sdpa_attention

        if not self.qk_layernorm or self.normalization != "RMSNorm" or self.num_moe_experts:
            raise ValueError("model: OLMo 2's layer needs qk_layernorm=true, normalization=RMSNorm and no experts")
        spec = specs.get_gpt_layer_local_spec(qk_layernorm=True, normalization="RMSNorm")
        return with_sdpa_attention(post_norm_spec(spec, self), self.attention_backend)


@dataclasses.dataclass
class OLMo2_7B(OLMo2Provider):
    num_layers: int = 32
    hidden_size: int = 4096
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 11008


@dataclasses.dataclass
class OLMo2_13B(OLMo2Provider):
    num_layers: int = 40
    hidden_size: int = 5120
    num_attention_heads: int = 40
    ffn_hidden_size: Optional[int] = 13824
