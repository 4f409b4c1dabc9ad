"""torch's fused Adam kernel for the optimizer Megatron-Core falls back to without TE or Apex.

Megatron-Core builds ``torch.optim.Adam``/``AdamW`` when neither Transformer Engine nor Apex is
installed (every CPU run, and a GPU image without them) and leaves ``fused`` and ``foreach`` at torch's
defaults: the per-tensor loop on CPU, about ten elementwise passes per parameter tensor (mul, lerp,
sqrt, addcdiv, ...). torch's fused kernel does one pass per tensor and computes the same update to
float rounding (a few ulp, not bit for bit). Measured on the 2-core CPU machine
(``benchmarks/throughput_vs_hf.py --per-tensor-adam`` for the ablation): see README's benchmark section.

plugtron switches it on for every param group whose parameters all live on a device with a fused
kernel and have a dtype it supports; ``foreach`` must then be off (torch refuses both). A checkpoint
load replaces the param groups' options with the saved ones, so the loaders call this again.
"""

from __future__ import annotations

import logging
from typing import Iterator

import torch

log = logging.getLogger(__name__)

_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)

# process-wide switch for the benchmark's ablation (--per-tensor-adam); not a config field: the
# fused kernel computes the same update, so there is nothing for a user to choose
ENABLED = True


def _torch_adams(optimizer) -> Iterator[torch.optim.Optimizer]:
    for opt in getattr(optimizer, "chained_optimizers", [optimizer]):
        inner = getattr(opt, "optimizer", opt)
        if isinstance(inner, (torch.optim.Adam, torch.optim.AdamW)):
            yield inner


def _fused_supported(params) -> bool:
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    devices = set(_get_fused_kernels_supported_devices())
    return bool(params) and all(
        p.device.type in devices and p.dtype in _FUSED_DTYPES and not torch.is_complex(p) for p in params
    )


def use_fused_adam(optimizer) -> int:
    """Turn on ``fused`` in each eligible param group of Megatron's torch Adam(s); returns how many
    groups use it."""
    if not ENABLED:
        return 0
    count = 0
    for adam in _torch_adams(optimizer):
        for group in adam.param_groups:
            if group.get("differentiable") or not _fused_supported(group["params"]):
                continue
            group["fused"], group["foreach"] = True, False
            count += 1
    if count:
        log.debug("optimizer: torch's fused Adam kernel for %d param group(s)", count)
    return count
