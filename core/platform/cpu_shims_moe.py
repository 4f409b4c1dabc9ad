"""CUDA stream/event stand-ins and MoE token-dispatcher patches for ``plugtron.platform.cpu_shims``.

Nothing here runs on import: ``cpu_shims`` registers these functions (with their reasons) in its
``SHIMS`` registry and calls them from ``apply()``, only when CUDA is absent.
"""

from __future__ import annotations

import contextlib
import time

import torch

_CPU = torch.device("cpu")


class CpuEvent:
    """Stand-in for torch.cuda.Event: CPU work is synchronous, so it is always complete."""

    def __init__(self, enable_timing=False, blocking=False, interprocess=False):
        self._t = None

    def record(self, stream=None):
        self._t = time.perf_counter()

    def wait(self, stream=None):
        pass

    def synchronize(self):
        pass

    def query(self):
        return True

    def elapsed_time(self, end):
        if self._t is None or end._t is None:
            raise RuntimeError("elapsed_time needs both events recorded")
        return (end._t - self._t) * 1000.0


class CpuStream:
    """Stand-in for torch.cuda.Stream."""

    device = _CPU

    def __init__(self, device=None, priority=0, **kwargs):
        pass

    def wait_stream(self, stream):
        pass

    def wait_event(self, event):
        pass

    def record_event(self, event=None):
        event = event or CpuEvent()
        event.record(self)
        return event

    def synchronize(self):
        pass

    def query(self):
        return True


_DEFAULT_STREAM = CpuStream()


def patch_streams_events() -> None:
    torch.cuda.Stream = CpuStream
    torch.cuda.Event = CpuEvent
    torch.cuda.current_stream = lambda device=None: _DEFAULT_STREAM
    torch.cuda.default_stream = lambda device=None: _DEFAULT_STREAM
    torch.cuda.stream = lambda stream=None: contextlib.nullcontext(stream)
    # Argument parsing rejects a stand-in stream before any torch-function mode sees it.
    torch.Tensor.record_stream = lambda self, stream: None


def patch_te_general_gemm() -> None:
    from megatron.core.transformer.moe import moe_utils

    if not hasattr(moe_utils, "te_general_gemm"):
        moe_utils.te_general_gemm = None


def patch_split_sizes() -> None:
    from megatron.core.transformer.moe import moe_utils, token_dispatcher

    original = moe_utils.maybe_move_tensor_to_cpu

    def maybe_move_tensor_to_cpu(tensor, as_numpy=False, record_stream=False):
        if torch.is_tensor(tensor) and not tensor.is_cuda:
            # Like the CUDA path, hand back a host copy (numpy when asked) that all_to_all accepts.
            return tensor.numpy().copy() if as_numpy else tensor
        return original(tensor, as_numpy=as_numpy, record_stream=record_stream)

    moe_utils.maybe_move_tensor_to_cpu = maybe_move_tensor_to_cpu
    # token_dispatcher imported the function by name.
    token_dispatcher.maybe_move_tensor_to_cpu = maybe_move_tensor_to_cpu
