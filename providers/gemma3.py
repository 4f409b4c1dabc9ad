"""Gemma 3 (text-only, Hugging Face ``Gemma3ForCausalLM``): provider, layer and sizes.

What Gemma 3 adds to a Llama-style decoder, and where each piece lives here (Megatron-Core 0.16 has
the first four as config fields; the rest it lacks, so plugtron builds them in this module, never
by changing Megatron):

- query scaling by ``query_pre_attn_scalar ** -0.5`` -> Megatron's ``softmax_scale`` (set in ``finalize``);
- QK norm per head -> ``qk_layernorm`` (with the norm below);
- alternating sliding-window / global layers -> ``window_size=(W-1, 0)`` (a query sees W keys,
  itself included, as in HF) and ``window_attn_skip_freq`` (6: every 6th layer is global, or a
  0/1 list per layer, 1 = sliding);
- GeGLU with tanh-GELU -> ``gated_linear_unit`` + ``gelu_tanh`` (torch's kernel, HF's ``gelu_pytorch_tanh``);
- RMSNorm as ``x * (1 + w)`` computed in fp32 and cast back (HF's ``Gemma3RMSNorm``): ``GemmaRMSNorm``,
  used for every norm (input, pre-MLP, Q/K, the two post-norms, final);
- post-attention and post-MLP norms (applied to the branch before the residual add):
  ``Gemma3TransformerLayer``, which also gives sliding layers their own RoPE base
  (``rotary_base_local``, no scaling) while global layers use GPTModel's (``rotary_base`` and
  linear ``rope_scaling`` as ``seq_len_interpolation_factor``);
- embeddings scaled by ``sqrt(hidden)``, the factor cast to the embedding dtype first (as HF), and
  the optional final logit soft-capping ``cap * tanh(logits / cap)``: forward hooks installed by
  ``Gemma3Provider.provide`` on the word embeddings and the output layer.

Built from Megatron's local modules (with torch SDPA attention, sliding window included) on CPU
and GPU alike; Transformer Engine layers are not wired for Gemma 3 (``transformer_impl`` must be
``local``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, List, Literal, Optional, Tuple, Union

import torch
from megatron.core.transformer.transformer_layer import TransformerLayer

from plugtron.config.converter import gelu_tanh
from plugtron.providers.gpt import GPTModelProvider, uses_te_layers, with_sdpa_attention


class GemmaRMSNorm(torch.nn.Module):
    """``x / rms(x) * (1 + w)`` in fp32, cast back to the input dtype; ``w`` starts at zero.
    Takes the arguments Megatron's ``build_module`` passes to a norm (config, hidden_size, eps)."""

    def __init__(self, config, hidden_size: int, eps: float = 1e-6, **_unused):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.zeros(hidden_size, dtype=config.params_dtype))
        # replicated over TP: with sequence parallelism each rank sees other tokens, so the gradient
        # is all-reduced over TP (Megatron's finalize_model_grads reads this attribute)
        self.weight.sequence_parallel = config.sequence_parallel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * (1.0 + self.weight.float())).type_as(x)


class _NormThenAdd:
    """A bias-dropout-add factory (what ``TransformerLayer`` calls ``self_attn_bda``/``mlp_bda``)
    that normalizes the branch output first: ``residual + dropout(norm(out + bias))``."""

    def __init__(self, bda, norm: torch.nn.Module):
        self.bda, self.norm = bda, norm

    def __call__(self, training: bool, fused: bool):
        add = self.bda(training, fused)

        def norm_then_add(out_with_bias, residual, prob):
            out, bias = out_with_bias
            if bias is not None:
                out = out + bias
            return add((self.norm(out), None), residual, prob)

        return norm_then_add


class Gemma3TransformerLayer(TransformerLayer):
    """Megatron's layer plus Gemma's post-attention/post-MLP norms and the local RoPE of sliding layers."""

    def __init__(self, config, submodules, layer_number: int = 1, **kwargs):
        super().__init__(config, submodules, layer_number=layer_number, **kwargs)
        from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
        from megatron.core.transformer.utils import is_layer_window_attention

        h, eps = config.hidden_size, config.layernorm_epsilon
        self.post_self_attn_layernorm = GemmaRMSNorm(config, h, eps)
        self.post_mlp_layernorm = GemmaRMSNorm(config, h, eps)
        self.self_attn_bda = _NormThenAdd(self.self_attn_bda, self.post_self_attn_layernorm)
        self.mlp_bda = _NormThenAdd(self.mlp_bda, self.post_mlp_layernorm)
        self.local_rope = None
        sliding = is_layer_window_attention(config.window_size, config.window_attn_skip_freq, self.layer_number)
        if sliding and config.position_embedding_type == "rope":
            self.local_rope = RotaryEmbedding(config.kv_channels, config.rotary_percent, rotary_base=config.rotary_base_local,
                                              use_cpu_initialization=config.use_cpu_initialization)

    def forward(self, *args, rotary_pos_emb=None, **kwargs):
        if self.local_rope is not None and rotary_pos_emb is not None:
            if isinstance(rotary_pos_emb, tuple):
                # Megatron passes a (query, key) pair only for multi-latent attention, which no Gemma 3
                # config builds (import refuses other attention variants); a guard, not a missing piece.
                raise NotImplementedError("Gemma 3 local RoPE: separate query/key rotary embeddings are not supported")
            rotary_pos_emb = self.local_rope(rotary_pos_emb.shape[0])  # same positions, the local base
        return super().forward(*args, rotary_pos_emb=rotary_pos_emb, **kwargs)


def _scale_output(scale: float):
    def hook(_module, _inputs, out):
        # HF: embed_scale (an fp32 tensor) cast to the embedding dtype, then multiplied
        return out * torch.tensor(scale, dtype=torch.float32).to(out.dtype)
    return hook


def _soft_cap(cap: float):
    def hook(_module, _inputs, out):
        logits, bias = out
        return torch.tanh(logits / cap) * cap, bias
    return hook


@dataclasses.dataclass
class Gemma3Provider(GPTModelProvider):
    # Marks a provider whose layers are built from Megatron's local modules only (see the module doc).
    LOCAL_LAYERS_ONLY = True

    seq_length: int = 32768
    normalization: Literal["LayerNorm", "RMSNorm"] = "RMSNorm"
    layernorm_zero_centered_gamma: bool = True
    layernorm_epsilon: float = 1e-6
    activation_func: Callable = gelu_tanh
    gated_linear_unit: bool = True
    position_embedding_type: Literal["learned_absolute", "rope", "none"] = "rope"
    add_bias_linear: bool = False
    share_embeddings_and_output_weights: bool = True
    qk_layernorm: bool = True
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    kv_channels: Optional[int] = 256
    rotary_base: int = 1_000_000
    # RoPE base of the sliding-window layers (HF's rope_local_base_freq)
    rotary_base_local: int = 10_000
    # Attention scores are scaled by query_pre_attn_scalar ** -0.5 (null: kv_channels ** -0.5)
    query_pre_attn_scalar: Optional[float] = None
    window_size: Optional[Tuple[int, int]] = (511, 0)
    window_attn_skip_freq: Optional[Union[int, List[int]]] = 6
    # cap * tanh(logits / cap) on the output logits (HF's final_logit_softcapping); null: none
    final_logit_softcapping: Optional[float] = None
    vocab_size: Optional[int] = 262_144
    transformer_impl: Literal["local", "transformer_engine", "inference_optimized"] = "local"

    def finalize(self) -> None:
        if uses_te_layers(self):
            raise ValueError("model.transformer_impl: Gemma 3 is built from Megatron's local layers in plugtron "
                             "(Transformer Engine layers are not wired for its post-norms); set it to 'local'")
        scalar = self.query_pre_attn_scalar or self.kv_channels or self.hidden_size // self.num_attention_heads
        scale = float(scalar) ** -0.5
        if self.softmax_scale is not None and self.softmax_scale != scale:
            raise ValueError(f"model.softmax_scale: {self.softmax_scale} contradicts query_pre_attn_scalar={scalar} "
                             f"(which gives {scale}); set query_pre_attn_scalar and leave softmax_scale null")
        self.softmax_scale = scale
        if self.final_logit_softcapping is not None and not self.final_logit_softcapping > 0:
            raise ValueError(f"model.final_logit_softcapping: expected a positive number or null, got "
                             f"{self.final_logit_softcapping}")
        super().finalize()

    def layer_spec(self):
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

        spec = get_gpt_layer_local_spec(qk_layernorm=self.qk_layernorm, normalization="RMSNorm")
        spec.module = Gemma3TransformerLayer
        sub = spec.submodules
        sub.input_layernorm = sub.pre_mlp_layernorm = GemmaRMSNorm
        if self.qk_layernorm:
            attn = sub.self_attention.submodules
            attn.q_layernorm = attn.k_layernorm = GemmaRMSNorm
        return with_sdpa_attention(spec, self.attention_backend)

    def decoder_spec(self, vp_stage: Optional[int] = None):
        """This stage's layers and a Gemma final norm (Megatron would pick its own norm class)."""
        from megatron.core.transformer.spec_utils import ModuleSpec
        from megatron.core.transformer.transformer_block import (
            TransformerBlock, TransformerBlockSubmodules, get_num_layers_to_build,
        )

        layers = get_num_layers_to_build(self, vp_stage=vp_stage)
        return ModuleSpec(module=TransformerBlock, submodules=TransformerBlockSubmodules(
            layer_specs=[self.layer_spec()] * layers, layer_norm=GemmaRMSNorm))

    def provide(self, pre_process: bool = True, post_process: bool = True, vp_stage: Optional[int] = None):
        model = super().provide(pre_process=pre_process, post_process=post_process, vp_stage=vp_stage)
        if model.pre_process:
            model.embedding.word_embeddings.register_forward_hook(_scale_output(math.sqrt(self.hidden_size)))
        if model.post_process and self.final_logit_softcapping:
            model.output_layer.register_forward_hook(_soft_cap(float(self.final_logit_softcapping)))
        return model


@dataclasses.dataclass
class Gemma3_1B(Gemma3Provider):
    """Gemma 3 1B (google/gemma-3-1b-pt): 26 layers, 4 heads / 1 KV head of 256, window 512."""

    num_layers: int = 26
    hidden_size: int = 1152
    num_attention_heads: int = 4
    num_query_groups: Optional[int] = 1
    ffn_hidden_size: Optional[int] = 6912
    vocab_size: Optional[int] = 262_144
    window_size: Optional[Tuple[int, int]] = (511, 0)


@dataclasses.dataclass
class _Gemma3Long(Gemma3Provider):
    """The 4B/12B/27B text stacks: 128k context by linear RoPE scaling x8 on global layers, window 1024."""

    seq_length: int = 131072
    vocab_size: Optional[int] = 262_208
    window_size: Optional[Tuple[int, int]] = (1023, 0)
    seq_len_interpolation_factor: Optional[float] = 8.0


@dataclasses.dataclass
class Gemma3_4B(_Gemma3Long):
    num_layers: int = 34
    hidden_size: int = 2560
    num_attention_heads: int = 8
    num_query_groups: Optional[int] = 4
    ffn_hidden_size: Optional[int] = 10240


@dataclasses.dataclass
class Gemma3_12B(_Gemma3Long):
    num_layers: int = 48
    hidden_size: int = 3840
    num_attention_heads: int = 16
    num_query_groups: Optional[int] = 8
    ffn_hidden_size: Optional[int] = 15360


@dataclasses.dataclass
class Gemma3_27B(_Gemma3Long):
    """Heads of 128, but queries scaled by 168 ** -0.5 (hidden / heads)."""

    num_layers: int = 62
    hidden_size: int = 5376
    num_attention_heads: int = 32
    num_query_groups: Optional[int] = 16
    kv_channels: Optional[int] = 128
    query_pre_attn_scalar: Optional[float] = 168
    ffn_hidden_size: Optional[int] = 21504
