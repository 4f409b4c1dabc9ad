"""Mixed precision: presets and ``MixedPrecisionConfig`` (NeMo: MegatronMixedPrecisionPlugin).

dtype fields accept ``torch.bfloat16`` in Python or ``"bfloat16"`` / ``"bf16"`` in YAML; torch is
imported only when a dtype string is structured.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import attrs


def _dtype(v: Any) -> Any:
    from plugtron.config.converter import to_dtype

    return to_dtype(v)


@attrs.define(kw_only=True)
class MixedPrecisionConfig:
    """What ``apply()`` copies onto the model, optimizer and DDP configs.

    bf16/fp16 train inside Megatron's ``Float16Module`` with fp32 main params in the optimizer;
    fp16 uses a dynamic loss scale unless ``loss_scale`` is set.
    """

    fp32: bool = False
    fp16: bool = False
    bf16: bool = False
    # "structure": the converter calls it per field, so a bad name is reported at its own path.
    params_dtype: Any = attrs.field(default=None, converter=lambda v: _dtype(v), metadata={"structure": _dtype})
    pipeline_dtype: Any = attrs.field(default=None, converter=lambda v: _dtype(v), metadata={"structure": _dtype})
    autocast_enabled: bool = False
    grad_reduce_in_fp32: bool = True
    fp8: Optional[str] = None
    loss_scale: Optional[float] = None
    initial_loss_scale: float = 4294967296.0
    min_loss_scale: float = 1.0
    loss_scale_window: float = 1000.0
    hysteresis: int = 2


# name -> keyword arguments of MixedPrecisionConfig; dtypes as strings so this stays torch-free.
PRESETS: Dict[str, Dict[str, Any]] = {
    "32": dict(fp32=True, params_dtype="float32", pipeline_dtype="float32", grad_reduce_in_fp32=False),
    "fp32": dict(fp32=True, params_dtype="float32", pipeline_dtype="float32", grad_reduce_in_fp32=False),
    "bf16-mixed": dict(bf16=True, params_dtype="bfloat16", pipeline_dtype="bfloat16"),
    "16-mixed": dict(fp16=True, params_dtype="float16", pipeline_dtype="float16"),
    "fp16-mixed": dict(fp16=True, params_dtype="float16", pipeline_dtype="float16"),
    "bf16_with_fp8_delayed_scaling_mixed": dict(
        bf16=True, params_dtype="bfloat16", pipeline_dtype="bfloat16", fp8="hybrid"
    ),
}
