"""The StableLM provider and a named size (``model.provider: stablelm_2_1_6b``)."""

import dataclasses
from typing import Literal, Optional

from plugtron.providers.llama import LlamaProvider


@dataclasses.dataclass
class StableLMProvider(LlamaProvider):
    """StableLM: Llama's layout with LayerNorm and partial rotary embeddings (a quarter of each head)."""

    normalization: Literal["LayerNorm", "RMSNorm"] = "LayerNorm"
    rotary_percent: float = 0.25
    seq_length: int = 4096
    vocab_size: Optional[int] = 50304


@dataclasses.dataclass
class StableLM2_1_6B(StableLMProvider):
    """StableLM 2 1.6B (24 layers of 2048, Q/K/V biases, 100352-token vocabulary)."""

    num_layers: int = 24
    hidden_size: int = 2048
    num_attention_heads: int = 32
    ffn_hidden_size: Optional[int] = 5632
    vocab_size: Optional[int] = 100352
    add_qkv_bias: bool = True
