"""``GPTModelProvider``: a Megatron-Core ``TransformerConfig`` that knows how to build a GPTModel.

It *is* Megatron's dataclass (subclassed, not copied), so every ``TransformerConfig`` and
``ModelParallelConfig`` field - parallelism included - is settable from YAML as ``model.<field>``.
Megatron's ``__post_init__`` validation and derivations run in ``finalize()`` (called by
``ConfigContainer.validate()``), not at construction: a partially specified provider, as in the
migration guide's snippets, constructs without error and YAML overrides can be applied first.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Literal, Optional

import torch
from megatron.core.transformer import TransformerConfig

log = logging.getLogger(__name__)


def te_available() -> bool:
    """Transformer Engine importable *and* CUDA present (TE layers cannot run on CPU)."""
    if not torch.cuda.is_available():
        return False
    try:
        import transformer_engine  # noqa: F401  (lazy: optional heavy extra)
    except ImportError:
        return False
    return True


def uses_te_layers(config) -> bool:
    """Whether a model built from ``config`` gets Transformer Engine layers (``layer_spec``'s choice)."""
    return getattr(config, "transformer_impl", "local") == "transformer_engine" and te_available()


def with_sdpa_attention(spec, attention_backend=None):
    """``spec`` (a local GPT layer spec, changed in place and returned) with its self-attention's
    core attention computed by torch SDPA (``plugtron.providers.sdpa_attention``), unless
    ``attention_backend`` asks for Megatron's unfused module (``unfused``/``local``)."""
    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnBackend

    from plugtron.providers.sdpa_attention import SDPADotProductAttention

    if attention_backend in (AttnBackend.unfused, AttnBackend.local):
        return spec
    attn = spec.submodules.self_attention.submodules
    if getattr(attn.core_attention, "module", attn.core_attention) is DotProductAttention:
        attn.core_attention = SDPADotProductAttention
    return spec


def check_encoder_parallelism(cfg) -> None:
    etp, epp = cfg.encoder_tensor_model_parallel_size, cfg.encoder_pipeline_model_parallel_size
    if etp not in (None, cfg.tensor_model_parallel_size) or epp not in (None, 0):
        raise ValueError(
            "encoder_tensor_model_parallel_size/encoder_pipeline_model_parallel_size: Megatron-Core 0.16 has no "
            "separate encoder parallelism; leave them null (the encoder uses the model's TP/PP)"
        )


@dataclasses.dataclass
class GPTModelProvider(TransformerConfig):
    """Decoder-only GPT. Extra fields beyond ``TransformerConfig`` are GPTModel's own arguments."""

    # Marks a model provider for the config converter: ``model.provider: <name>`` selects a class
    # from ``plugtron.providers.registry`` (not a dataclass field: no annotation).
    _plugtron_provider = True

    seq_length: int = 1024
    # Positions the model supports (learned table size; HF's max_position_embeddings); null: seq_length.
    max_position_embeddings: Optional[int] = None
    vocab_size: Optional[int] = None  # None: taken from the tokenizer, then padded
    make_vocab_size_divisible_by: int = 128
    share_embeddings_and_output_weights: bool = True
    position_embedding_type: Literal["learned_absolute", "rope", "none"] = "learned_absolute"
    rotary_base: int = 10000
    rotary_percent: float = 1.0
    rope_scaling: bool = False
    rope_scaling_factor: float = 8.0
    seq_len_interpolation_factor: Optional[float] = None
    fp16_lm_cross_entropy: bool = False
    parallel_output: bool = True
    scatter_embedding_sequence_parallel: bool = True
    # The guide's encoder parallelism fields. Megatron-Core 0.16 removed separate encoder
    # parallelism: accepted only as "same as the decoder" (null, or equal to TP / 0 for PP).
    encoder_tensor_model_parallel_size: Optional[int] = None
    encoder_pipeline_model_parallel_size: Optional[int] = None

    def __post_init__(self) -> None:
        # Deliberately deferred: see finalize(). Megatron's checks need the whole config.
        pass

    def finalize(self) -> None:
        """Run Megatron's ``TransformerConfig.__post_init__`` (validation + derived fields such as
        ``ffn_hidden_size`` and ``kv_channels``). Raises ``ValueError`` on an impossible config."""
        TransformerConfig.__post_init__(self)
        check_encoder_parallelism(self)

    # ---- building -------------------------------------------------------------------------
    def padded_vocab_size(self, vocab_size: int) -> int:
        """Pad to a multiple of ``make_vocab_size_divisible_by * tensor_model_parallel_size``
        (Megatron-LM's rule, so every TP shard of the embedding has the same size)."""
        multiple = self.make_vocab_size_divisible_by * self.tensor_model_parallel_size
        return ((vocab_size + multiple - 1) // multiple) * multiple

    def layer_spec(self):
        """Transformer Engine spec with TE + CUDA, else Megatron's local (pure torch) spec."""
        from megatron.core.models.gpt import gpt_layer_specs as specs

        use_te = uses_te_layers(self)
        if self.transformer_impl == "transformer_engine" and not use_te:
            log.debug("Transformer Engine unavailable: using the local layer spec")
        if use_te:
            return specs.get_gpt_layer_with_transformer_engine_spec(
                num_experts=self.num_moe_experts,
                moe_grouped_gemm=self.moe_grouped_gemm,
                qk_layernorm=self.qk_layernorm,
            )
        spec = specs.get_gpt_layer_local_spec(
            num_experts=self.num_moe_experts,
            moe_grouped_gemm=self.moe_grouped_gemm,
            qk_layernorm=self.qk_layernorm,
            normalization=self.normalization,
        )
        # Megatron's local attention is unfused (a [b*heads, s, s] score buffer, kept for the backward):
        # torch SDPA instead, on CPU (a third of a small Llama's step) and CUDA (flash kernels).
        return with_sdpa_attention(spec, self.attention_backend)

    def decoder_spec(self, vp_stage: Optional[int] = None):
        """What GPTModel builds its decoder from: the layer spec (a family whose block differs, e.g.
        its final norm, returns a whole TransformerBlock spec for this pipeline stage)."""
        return self.layer_spec()

    def provide(self, pre_process: bool = True, post_process: bool = True, vp_stage: Optional[int] = None):
        """Build this rank's GPTModel chunk. Parallel state must be initialized."""
        from megatron.core.models.gpt import GPTModel

        if self.vocab_size is None:
            raise ValueError("model.vocab_size is not set (validate() fills it from the tokenizer)")
        model = GPTModel(
            config=self,
            transformer_layer_spec=self.decoder_spec(vp_stage),
            vocab_size=self.padded_vocab_size(self.vocab_size),
            max_sequence_length=self.max_position_embeddings or self.seq_length,
            pre_process=pre_process,
            post_process=post_process,
            fp16_lm_cross_entropy=self.fp16_lm_cross_entropy,
            parallel_output=self.parallel_output,
            share_embeddings_and_output_weights=self.share_embeddings_and_output_weights,
            position_embedding_type=self.position_embedding_type,
            rotary_percent=self.rotary_percent,
            rotary_base=self.rotary_base,
            rope_scaling=self.rope_scaling,
            rope_scaling_factor=self.rope_scaling_factor,
            scatter_embedding_sequence_parallel=self.scatter_embedding_sequence_parallel,
            seq_len_interpolation_factor=self.seq_len_interpolation_factor,
            vp_stage=vp_stage,
        )
        from plugtron.providers.vocab_padding import mask_padding_logits

        mask_padding_logits(model, self.vocab_size)  # padding rows never change the function
        if not uses_te_layers(self):
            # local spec: RoPE and SwiGLU without their copies and cats (bit-for-bit Megatron's results)
            from plugtron.providers.unfused_fast_paths import install_fast_rope, use_fast_mlp

            install_fast_rope()
            use_fast_mlp(model)
        return model
