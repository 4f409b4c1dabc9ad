"""Llama-family provider: ``GPTModelProvider`` with Llama's architecture defaults.

RoPE, RMSNorm, SwiGLU (gated ``silu`` MLP), no linear biases, untied embeddings. Named size presets
and HF conversion arrive with the providers issue; this class carries the defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal

import torch.nn.functional as F

from plugtron.providers.gpt import GPTModelProvider


@dataclasses.dataclass
class LlamaProvider(GPTModelProvider):
    normalization: Literal["LayerNorm", "RMSNorm"] = "RMSNorm"
    activation_func: Callable = F.silu
    gated_linear_unit: bool = True
    position_embedding_type: Literal["learned_absolute", "rope", "none"] = "rope"
    add_bias_linear: bool = False
    share_embeddings_and_output_weights: bool = False
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    rotary_base: int = 10000
    layernorm_epsilon: float = 1e-5
