"""``MambaProvider``: Megatron-Core's ``MambaModel`` (pure Mamba-2 or a hybrid with attention and
MLP layers) from one config.

The layer pattern is plain data and checked here, on any machine: ``hybrid_override_pattern`` is a
string of ``M`` (Mamba), ``*`` (attention), ``-`` (MLP), ``E`` (MoE), one per layer; without it,
Megatron allocates ``hybrid_attention_ratio``/``hybrid_mlp_ratio`` of the layers evenly.

On CUDA the layers use the ``mamba_ssm``/``causal_conv1d`` kernels (``provide()`` raises
``UnsupportedOnThisMachine`` when they are missing there, instead of failing deep inside Megatron). On a
CPU-only machine ``plugtron.platform.cpu_shims`` puts pure-PyTorch stand-ins in their place (same math,
tested against a sequential reference), and without Transformer Engine the model is built from
``local_mamba_stack_spec`` (Megatron's plain torch layers) instead of Megatron's TE-only spec.
"""

from __future__ import annotations

import dataclasses
from typing import List, Literal, Optional

import torch
from megatron.core.transformer import TransformerConfig

from plugtron.errors import UnsupportedOnThisMachine


def mamba_kernels_missing() -> Optional[str]:
    """Why Mamba layers cannot be built here, or None."""
    try:
        import einops  # noqa: F401  (MambaMixer's dependency)
    except ImportError:
        return "the 'einops' package is not installed"
    if not torch.cuda.is_available():
        try:
            from megatron.core.ssm import mamba_mixer
        except ImportError:  # without triton it imports only once the CPU shims are applied
            mamba_mixer = None
        if mamba_mixer is not None and mamba_mixer.HAVE_MAMBA_SSM:
            return None
        return ("CUDA is not available and plugtron's CPU stand-in is not installed "
                "(call plugtron.platform.cpu_shims.apply() before building the model)")
    for module in ("mamba_ssm", "triton", "causal_conv1d"):
        try:
            __import__(module)
        except ImportError:
            return f"the '{module}' package is not installed"
    return None


@dataclasses.dataclass
class MambaProvider(TransformerConfig):
    _plugtron_provider = True  # selectable as `model.provider: mamba`
    model_kind = "mamba"  # GPT batches, plus its own config checks (plugtron.providers.model_kind)
    # HF import (plugtron.providers.hf.mamba2) fills whole tensors: in_proj's TP split is per part, not by rows
    IMPORTS_AT_TP1_ONLY = True
    TP1_IMPORT_REASON = "Megatron splits a Mamba layer's in_proj per part [z, x, B, C, dt], not by contiguous rows"

    seq_length: int = 2048
    vocab_size: Optional[int] = None
    make_vocab_size_divisible_by: int = 128
    hybrid_attention_ratio: float = 0.0
    hybrid_mlp_ratio: float = 0.0
    hybrid_override_pattern: Optional[str] = None
    share_embeddings_and_output_weights: bool = False
    position_embedding_type: Literal["learned_absolute", "rope", "none"] = "none"
    rotary_base: int = 10000
    rotary_percent: float = 1.0
    normalization: Literal["LayerNorm", "RMSNorm"] = "RMSNorm"
    add_bias_linear: bool = False
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    layernorm_epsilon: float = 1e-5
    fp16_lm_cross_entropy: bool = False
    parallel_output: bool = True

    def __post_init__(self) -> None:
        pass  # deferred to finalize(), as for GPTModelProvider

    def finalize(self) -> None:
        TransformerConfig.__post_init__(self)
        self.layer_pattern()  # a bad pattern or ratio is a config error, on any machine

    def layer_pattern(self) -> List[str]:
        """One symbol per layer (``M``, ``*``, ``-``, ``E``), as Megatron will allocate them."""
        from megatron.core.ssm.mamba_hybrid_layer_allocation import allocate_layers

        for name in ("hybrid_attention_ratio", "hybrid_mlp_ratio"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}: expected a value in [0, 1], got {v}")
        if self.hybrid_attention_ratio + self.hybrid_mlp_ratio > 1.0:
            raise ValueError("hybrid_attention_ratio + hybrid_mlp_ratio: must not exceed 1 (the rest are Mamba layers)")
        if self.num_layers <= 0:
            raise ValueError("num_layers: required (> 0)")
        try:
            return allocate_layers(self.num_layers, self.hybrid_attention_ratio, self.hybrid_mlp_ratio,
                                   self.hybrid_override_pattern)
        except ValueError as exc:
            raise ValueError(f"hybrid_override_pattern {self.hybrid_override_pattern!r}: {exc}") from None

    def padded_vocab_size(self, vocab_size: int) -> int:
        multiple = self.make_vocab_size_divisible_by * self.tensor_model_parallel_size
        return ((vocab_size + multiple - 1) // multiple) * multiple

    def stack_spec(self):
        """Megatron's Transformer Engine spec with TE + CUDA, else the local (pure torch) one."""
        from plugtron.providers.gpt import uses_te_layers

        if uses_te_layers(self):
            from megatron.core.models.mamba.mamba_layer_specs import mamba_stack_spec

            return mamba_stack_spec
        from plugtron.providers.mamba_local_spec import local_mamba_stack_spec

        return local_mamba_stack_spec(self.attention_backend)

    def provide(self, pre_process: bool = True, post_process: bool = True, vp_stage: Optional[int] = None):
        why = mamba_kernels_missing()
        if why is not None:
            raise UnsupportedOnThisMachine(
                f"model: MambaProvider builds Mamba layers, which need the mamba_ssm CUDA kernels (or, without "
                f"CUDA, plugtron's pure-PyTorch stand-in), but {why}. On a CUDA machine: "
                "`pip install mamba-ssm causal-conv1d`."
            )
        from megatron.core.models.mamba import MambaModel

        if self.vocab_size is None:
            raise ValueError("model.vocab_size is not set")
        model = MambaModel(
            config=self, mamba_stack_spec=self.stack_spec(), vocab_size=self.padded_vocab_size(self.vocab_size),
            max_sequence_length=self.seq_length, pre_process=pre_process, post_process=post_process,
            hybrid_attention_ratio=self.hybrid_attention_ratio, hybrid_mlp_ratio=self.hybrid_mlp_ratio,
            hybrid_override_pattern=self.hybrid_override_pattern, fp16_lm_cross_entropy=self.fp16_lm_cross_entropy,
            parallel_output=self.parallel_output,
            share_embeddings_and_output_weights=self.share_embeddings_and_output_weights,
            position_embedding_type=self.position_embedding_type, rotary_percent=self.rotary_percent,
            rotary_base=self.rotary_base,
        )
        from plugtron.providers.vocab_padding import mask_padding_logits

        mask_padding_logits(model, self.vocab_size)  # padding rows never change the function
        return model


# Size presets: Megatron Bridge's ``models/mamba/mamba_provider.py`` (``MambaModelProvider130M`` ...
# ``NVIDIAMambaHybridModelProvider8B``, the file next to ``recipes/mamba/mamba2.py`` at abdddc32b). The
# state-spaces sizes use the GPT-NeoX-20B tokenizer (50,277 ids, padded to a multiple of 16 as their
# checkpoints are) and tie the output layer to the embedding as those checkpoints do; NVIDIA's 8B models
# train on Bridge's NullTokenizer, so their vocabulary comes from the tokenizer.


@dataclasses.dataclass
class Mamba2_130M(MambaProvider):
    """Mamba-2 130M (pure Mamba, GPT-NeoX vocabulary)."""

    num_layers: int = 24
    hidden_size: int = 768
    ffn_hidden_size: int = 768
    num_attention_heads: int = 1  # unused by Mamba layers; TransformerConfig requires it
    mamba_num_groups: int = 1
    mamba_state_dim: int = 128
    seq_length: int = 2048
    vocab_size: Optional[int] = 50277
    make_vocab_size_divisible_by: int = 16
    share_embeddings_and_output_weights: bool = True


@dataclasses.dataclass
class Mamba2_370M(Mamba2_130M):
    """Mamba-2 370M: 48 layers of 1024."""

    num_layers: int = 48
    hidden_size: int = 1024
    ffn_hidden_size: int = 1024


@dataclasses.dataclass
class Mamba2_780M(Mamba2_130M):
    """Mamba-2 780M: 48 layers of 1536."""

    num_layers: int = 48
    hidden_size: int = 1536
    ffn_hidden_size: int = 1536


@dataclasses.dataclass
class Mamba2_1_3B(Mamba2_130M):
    """Mamba-2 1.3B: 48 layers of 2048."""

    num_layers: int = 48
    hidden_size: int = 2048
    ffn_hidden_size: int = 2048


@dataclasses.dataclass
class Mamba2_2_7B(Mamba2_130M):
    """Mamba-2 2.7B: 64 layers of 2560."""

    num_layers: int = 64
    hidden_size: int = 2560
    ffn_hidden_size: int = 2560


@dataclasses.dataclass
class Mamba2_8B(MambaProvider):
    """NVIDIA's Mamba-2 8B research model: 56 Mamba layers of 4096, 8 groups."""

    num_layers: int = 56
    hidden_size: int = 4096
    ffn_hidden_size: int = 4096
    num_attention_heads: int = 32
    mamba_num_groups: int = 8
    seq_length: int = 4096


@dataclasses.dataclass
class Mamba2_Hybrid_8B(Mamba2_8B):
    """NVIDIA's Mamba-2-Hybrid 8B: 24 Mamba, 4 attention (GQA 32/8) and 28 MLP layers of 4096."""

    hybrid_override_pattern: Optional[str] = "M-M-M--M-M*-M-M-M-M--M*-M-M-M-M-M*--M-M-M-M-M*-M--M-M-M-"
    ffn_hidden_size: int = 16384
    num_query_groups: Optional[int] = 8
