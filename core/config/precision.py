"""Mixed precision: presets and ``MixedPrecisionConfig`` (NeMo: MegatronMixedPrecisionPlugin).

dtype fields accept ``torch.bfloat16`` in Python or ``"bfloat16"`` / ``"bf16"`` in YAML; torch is
imported only when a dtype string is structured.
"""

from __future__ import annotations

from typing import Any, Dict, Literal, Optional

import attrs


def _dtype(v: Any) -> Any:
    from plugtron.config.converter import to_dtype

    return to_dtype(v)


@attrs.define(kw_only=True)
class MixedPrecisionConfig:
    """What ``apply()`` copies onto the model, optimizer and DDP configs.

    bf16/fp16 train inside Megatron's ``Float16Module`` with fp32 main params in the optimizer;
    fp16 uses a dynamic loss scale unless ``loss_scale`` is set.

    fp8 (Transformer Engine's layers only): ``fp8`` is the format (``"hybrid"``: e4m3 forward, e5m2
    gradients; ``"e4m3"`` both ways) and ``fp8_recipe`` the scaling (``"delayed"``: amax history of
    earlier steps; ``"tensorwise"``: current per-tensor scaling; ``"mxfp8"``: Blackwell block scaling;
    ``"blockwise"``: Hopper sub-channel). The ``fp8_*`` and bf16-layer fields go to Megatron's
    ``TransformerConfig`` fields of the same names, ``fp8_param_gather`` and
    ``reuse_grad_buf_for_mxfp8_param_ag`` to the DDP config (and the optimizer's), ``fp8_param``
    (null: as ``fp8_param_gather``) keeps the weights themselves in fp8. They apply only when ``fp8``
    is set; ``plugtron.platform.machine`` refuses an fp8 run where TE or the GPU cannot do it.
    """

    fp32: bool = False
    fp16: bool = False
    bf16: bool = False
    # "structure": the converter calls it per field, so a bad name is reported at its own path.
    params_dtype: Any = attrs.field(default=None, converter=lambda v: _dtype(v), metadata={"structure": _dtype})
    pipeline_dtype: Any = attrs.field(default=None, converter=lambda v: _dtype(v), metadata={"structure": _dtype})
    autocast_enabled: bool = False
    grad_reduce_in_fp32: bool = True
    fp8: Optional[Literal["hybrid", "e4m3"]] = None
    fp8_recipe: Literal["tensorwise", "delayed", "mxfp8", "blockwise"] = "tensorwise"
    fp8_margin: int = 0
    fp8_amax_history_len: int = 1
    fp8_amax_compute_algo: Literal["most_recent", "max"] = "most_recent"
    fp8_wgrad: bool = True
    fp8_dot_product_attention: bool = False
    fp8_multi_head_attention: bool = False
    fp8_param: Optional[bool] = None
    fp8_param_gather: bool = False
    first_last_layers_bf16: bool = False
    num_layers_at_start_in_bf16: int = 0
    num_layers_at_end_in_bf16: int = 0
    reuse_grad_buf_for_mxfp8_param_ag: bool = False
    loss_scale: Optional[float] = None
    initial_loss_scale: float = 4294967296.0
    min_loss_scale: float = 1.0
    loss_scale_window: float = 1000.0
    hysteresis: int = 2


#: MixedPrecisionConfig fields copied onto Megatron's TransformerConfig (same names) when fp8 is set.
FP8_MODEL_FIELDS = (
    "fp8", "fp8_recipe", "fp8_margin", "fp8_amax_history_len", "fp8_amax_compute_algo", "fp8_wgrad",
    "fp8_dot_product_attention", "fp8_multi_head_attention", "first_last_layers_bf16",
    "num_layers_at_start_in_bf16", "num_layers_at_end_in_bf16",
)

_BF16 = dict(bf16=True, params_dtype="bfloat16", pipeline_dtype="bfloat16", autocast_enabled=False,
             grad_reduce_in_fp32=True)
_FP16 = dict(fp16=True, params_dtype="float16", pipeline_dtype="float16", autocast_enabled=False,
             grad_reduce_in_fp32=False)
_FP32 = dict(fp32=True, params_dtype="float32", pipeline_dtype="float32", grad_reduce_in_fp32=False)

# name -> keyword arguments of MixedPrecisionConfig; dtypes as strings so this stays torch-free.
# Names as Megatron Bridge spells them; the NeMo 2.0 / Lightning spellings are aliases.
PRESETS: Dict[str, Dict[str, Any]] = {
    "bf16_mixed": _BF16,
    "fp16_mixed": _FP16,
    # fp8 with delayed scaling: amax over the last 1024 steps, weights kept in fp8
    "bf16_with_fp8_delayed_scaling_mixed": dict(
        _BF16, fp8="hybrid", fp8_recipe="delayed", fp8_margin=0, fp8_amax_history_len=1024,
        fp8_amax_compute_algo="max", fp8_param_gather=True),
    # fp8 with current (per-tensor, this step's) scaling; first and last layer stay in bf16
    "bf16_with_fp8_current_scaling_mixed": dict(
        _BF16, fp8="hybrid", fp8_recipe="tensorwise", first_last_layers_bf16=True,
        num_layers_at_start_in_bf16=1, num_layers_at_end_in_bf16=1, fp8_param_gather=True),
    # MXFP8 (Blackwell): e4m3 both ways, block scales; the grad buffer is reused for the param all-gather
    "bf16_with_mxfp8_mixed": dict(
        _BF16, fp8="e4m3", fp8_recipe="mxfp8", fp8_param_gather=True, reuse_grad_buf_for_mxfp8_param_ag=True),
    "32": _FP32,
    "fp32": _FP32,
    "bf16-mixed": _BF16,
    "16-mixed": _FP16,
    "fp16-mixed": _FP16,
}
