"""Let Megatron-Core's Mamba layers run without the ``mamba_ssm``/``causal_conv1d`` CUDA kernels.

``megatron.core.ssm.mamba_mixer`` imports the kernels at module import and, when they are missing,
leaves ``None``/``MagicMock`` in their place and refuses to build a ``MambaMixer``. ``patch_mamba_kernels``
puts the pure-PyTorch functions of ``mamba_ssd``/``mamba_conv_norm`` there instead (same signatures,
same math), and only when the kernels really are absent: an installed ``mamba_ssm`` is never replaced.

``cpu_shims`` registers these functions (with their reasons) in its ``SHIMS`` registry and calls them
from ``apply()``, only when CUDA is absent.
"""

from __future__ import annotations

import importlib.util
import sys

from plugtron.platform import mamba_conv_norm, mamba_ssd, mamba_tensor_ops

_TRITON_TENSOR_OPS = "megatron.core.inference.contexts.attention_context.triton.tensor_ops"


def _extended_gated_rms_norm():
    """``mamba_mixer.ExtendedRMSNorm`` (the gated norm with a TP-sharded checkpoint entry) on our norm."""
    from megatron.core import parallel_state
    from megatron.core.transformer.utils import make_sharded_tensors_for_checkpoint

    class ExtendedRMSNorm(mamba_conv_norm.GatedRMSNorm):
        def sharded_state_dict(self, prefix="", sharded_offsets=(), metadata=None):
            # As Megatron's: the weight is sharded along axis 0 over tensor parallelism.
            tp_group = getattr(self, "tp_group", None) or parallel_state.get_tensor_model_parallel_group()
            return make_sharded_tensors_for_checkpoint(
                self.state_dict(prefix="", keep_vars=True), prefix, {"weight": 0}, sharded_offsets,
                tp_group=tp_group, dp_cp_group=(metadata or {}).get("dp_cp_group"))

    return ExtendedRMSNorm


def patch_mamba_kernels() -> None:
    try:
        import einops  # noqa: F401  (MambaMixer's own dependency; plugtron declares it)
    except ImportError:
        return  # MambaMixer then raises its own clear "einops is required" error
    if importlib.util.find_spec("triton") is None and _TRITON_TENSOR_OPS not in sys.modules:
        # mamba_mixer imports Megatron's triton tensor ops at module import (dynamic-batching inference).
        sys.modules[_TRITON_TENSOR_OPS] = mamba_tensor_ops
    from megatron.core.ssm import mamba_mixer

    if mamba_mixer.HAVE_MAMBA_SSM and mamba_mixer.causal_conv1d_fn is not None:
        return
    mamba_mixer.mamba_chunk_scan_combined = mamba_ssd.mamba_chunk_scan_combined
    mamba_mixer.mamba_split_conv1d_scan_combined = mamba_ssd.mamba_split_conv1d_scan_combined
    mamba_mixer.selective_state_update = mamba_ssd.selective_state_update
    mamba_mixer.causal_conv1d_fn = mamba_conv_norm.causal_conv1d_fn
    mamba_mixer.causal_conv1d_update = mamba_conv_norm.causal_conv1d_update
    mamba_mixer.RMSNormGated = mamba_conv_norm.GatedRMSNorm
    mamba_mixer.ExtendedRMSNorm = _extended_gated_rms_norm()
    mamba_mixer.HAVE_MAMBA_SSM = True
    mamba_mixer.HAVE_EINOPS = True


def patch_mamba_final_norm() -> None:
    """``MambaStack`` builds its final norm with ``TENorm`` whatever the layer spec; without Transformer
    Engine use Megatron's torch norm (LayerNorm/RMSNorm per ``config.normalization``) instead."""
    from megatron.core.extensions import transformer_engine
    from megatron.core.ssm import mamba_block
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    if not transformer_engine.HAVE_TE:
        mamba_block.TENorm = WrappedTorchNorm
