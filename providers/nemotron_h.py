"""Nemotron-H (hybrid Mamba-2 / attention / squared-ReLU MLP) on Megatron-Core's ``MambaModel``.

Values from Megatron Bridge: ``src/megatron/bridge/models/mamba/nemotron_h_provider.py``
(``NemotronHModelProvider``, ``NemotronHModel4BProvider``, ``NemotronHModel8BProvider``) and the model
blocks of ``recipes/nemotronh/nemotronh.py`` at 0350b4ef4 (the same numbers). The layer pattern is one
symbol per layer: ``M`` Mamba-2 mixer, ``*`` attention (GQA, 8 key/value groups, no position
embedding), ``-`` MLP with squared ReLU. Bridge's MoE router settings on the base class only matter for
patterns with ``E`` layers, which the 4B and 8B models have none of, so they are not carried over;
neither are its GPU-only kernel choices (fused softmax, persistent layer norm, FP8 first/last layers).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from megatron.core.activations import squared_relu

from plugtron.providers.mamba import MambaProvider

_PATTERN_52 = "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-"


@dataclasses.dataclass
class NemotronHProvider(MambaProvider):
    """The Nemotron-H family's shared settings (Bridge's ``NemotronHModelProvider``)."""

    seq_length: int = 8192
    vocab_size: Optional[int] = 131072  # Nemotron-H's tokenizer
    make_vocab_size_divisible_by: int = 128
    mamba_num_groups: int = 8
    mamba_head_dim: int = 64
    num_query_groups: Optional[int] = 8
    activation_func: Callable = squared_relu
    apply_query_key_layer_scaling: bool = False
    is_hybrid_model: bool = True


@dataclasses.dataclass
class NemotronH_4B(NemotronHProvider):
    """Nemotron-H 4B: 52 layers of 3072 (24 Mamba with 112 heads, 4 attention, 24 MLP of 12288)."""

    hybrid_override_pattern: Optional[str] = _PATTERN_52
    num_layers: int = 52
    hidden_size: int = 3072
    mamba_num_heads: Optional[int] = 112
    kv_channels: Optional[int] = 128
    mamba_state_dim: int = 128
    ffn_hidden_size: int = 12288
    num_attention_heads: int = 32
    use_mamba_mem_eff_path: bool = False


@dataclasses.dataclass
class NemotronH_8B(NemotronHProvider):
    """Nemotron-H 8B: 52 layers of 4096 (24 Mamba with 128 heads, 4 attention, 24 MLP of 21504)."""

    hybrid_override_pattern: Optional[str] = _PATTERN_52
    num_layers: int = 52
    hidden_size: int = 4096
    mamba_num_heads: Optional[int] = 128
    mamba_state_dim: int = 128
    ffn_hidden_size: int = 21504
    num_attention_heads: int = 32
