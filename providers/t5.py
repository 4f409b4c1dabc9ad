"""``T5ModelProvider``: Megatron-Core's encoder-decoder ``T5Model`` from one config.

Like ``GPTModelProvider`` it *is* a ``TransformerConfig`` (the decoder's); the encoder's config is a
copy with ``encoder_num_layers``. Defaults follow Megatron-LM's T5: LayerNorm, GELU, biases,
learned absolute positions, tied input/output embeddings. Without Transformer Engine + CUDA the
local (pure torch) block specs are used, so a tiny T5 trains on CPU.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Literal, Optional

import torch.nn.functional as F
from megatron.core.transformer import TransformerConfig

from plugtron.providers.gpt import check_encoder_parallelism, te_available


@dataclasses.dataclass
class T5ModelProvider(TransformerConfig):
    """Encoder-decoder T5. ``num_layers`` is the decoder depth; ``encoder_num_layers`` defaults to it."""

    _plugtron_provider = True  # selectable as `model.provider: t5` (see plugtron.providers.registry)
    # `plugtron train` picks its data and forward step by this (plugtron.providers.model_kind): T5
    # trains on span corruption of the pretraining datasets (a class attribute, not a field).
    model_kind = "t5"

    encoder_num_layers: Optional[int] = None
    seq_length: int = 512  # encoder input length
    seq_length_dec: int = 128  # decoder input length
    # Span corruption (plugtron.data.t5). The sentinels are ids appended above the tokenizer's
    # vocabulary, so they belong to the model: a derived vocab_size includes them.
    num_sentinel_tokens: int = 100
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0
    vocab_size: Optional[int] = None
    make_vocab_size_divisible_by: int = 128
    share_embeddings_and_output_weights: bool = True
    position_embedding_type: Literal["learned_absolute", "rope", "relative"] = "learned_absolute"
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    rotary_percent: float = 1.0
    fp16_lm_cross_entropy: bool = False
    parallel_output: bool = True
    normalization: Literal["LayerNorm", "RMSNorm"] = "LayerNorm"
    activation_func: Callable = F.gelu
    add_bias_linear: bool = True
    layernorm_epsilon: float = 1e-5
    # The guide's encoder parallelism fields. Megatron-Core 0.16 removed separate encoder
    # parallelism: accepted only as "same as the decoder" (null, or equal to TP / 0 for PP).
    encoder_tensor_model_parallel_size: Optional[int] = None
    encoder_pipeline_model_parallel_size: Optional[int] = None

    def __post_init__(self) -> None:
        pass  # deferred to finalize(), as for GPTModelProvider

    def finalize(self) -> None:
        TransformerConfig.__post_init__(self)
        check_encoder_parallelism(self)
        if self.encoder_num_layers is None:
            self.encoder_num_layers = self.num_layers

    def padded_vocab_size(self, vocab_size: int) -> int:
        multiple = self.make_vocab_size_divisible_by * self.tensor_model_parallel_size
        return ((vocab_size + multiple - 1) // multiple) * multiple

    def encoder_config(self) -> TransformerConfig:
        enc = copy.copy(self)
        enc.num_layers = self.encoder_num_layers or self.num_layers
        return enc

    def provide(self, pre_process: bool = True, post_process: bool = True, vp_stage: Optional[int] = None):
        from megatron.core.models.T5 import T5Model
        from megatron.core.models.T5 import t5_spec

        if self.vocab_size is None:
            raise ValueError("model.vocab_size is not set")
        enc_layers = self.encoder_num_layers or self.num_layers
        if self.transformer_impl == "transformer_engine" and te_available():
            enc_spec = t5_spec.get_t5_encoder_with_transformer_engine_block_spec(enc_layers)
            dec_spec = t5_spec.get_t5_decoder_with_transformer_engine_block_spec(self.num_layers)
        else:
            enc_spec = t5_spec.get_t5_encoder_with_local_block_spec(enc_layers)
            dec_spec = t5_spec.get_t5_decoder_with_local_block_spec(self.num_layers)
        model = T5Model(
            config=self,
            encoder_config=self.encoder_config(),
            transformer_encoder_layer_spec=enc_spec,
            transformer_decoder_layer_spec=dec_spec,
            vocab_size=self.padded_vocab_size(self.vocab_size),
            max_sequence_length=max(self.seq_length, self.seq_length_dec),
            pre_process=pre_process,
            post_process=post_process,
            fp16_lm_cross_entropy=self.fp16_lm_cross_entropy,
            parallel_output=self.parallel_output,
            share_embeddings_and_output_weights=self.share_embeddings_and_output_weights,
            position_embedding_type=self.position_embedding_type,
            rotary_percent=self.rotary_percent,
            relative_attention_num_buckets=self.relative_attention_num_buckets,
            relative_attention_max_distance=self.relative_attention_max_distance,
        )
        from plugtron.providers.vocab_padding import mask_padding_logits

        mask_padding_logits(model, self.vocab_size)  # padding rows never change the function
        return model


@dataclasses.dataclass
class T5_220M(T5ModelProvider):
    """T5-base sized (Megatron-LM's 220M T5)."""

    num_layers: int = 12
    encoder_num_layers: Optional[int] = 12
    hidden_size: int = 768
    num_attention_heads: int = 12
    ffn_hidden_size: Optional[int] = 3072
    kv_channels: Optional[int] = 64
