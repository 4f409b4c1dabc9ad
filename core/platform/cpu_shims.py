"""Run Megatron-Core 0.16 on a CPU-only torch with gloo.

Megatron-Core assumes CUDA in a handful of places (hard-coded ``device="cuda"``,
``torch.cuda.current_device()``, CUDA RNG and stream APIs, a ``tensor.type()`` string).
Every workaround lives here, as one small named function with a one-line reason, so that
the list of what is patched is explicit and can be shown by docs and tests (``SHIMS``).

    from plugtron.platform import cpu_shims
    cpu_shims.apply()      # no-op (returns ()) when CUDA is available

``apply()`` is idempotent. On a machine with CUDA nothing is ever patched. Call it before
building models, at top level (not inside another ``with`` torch-function mode).

The device remap is a ``torch.overrides.TorchFunctionMode`` kept at the bottom of the
torch-function mode stack. That stack is per thread: ``apply()`` covers the calling thread
(call it again from any other thread that runs Megatron code).
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable

import torch
from torch.overrides import (
    TorchFunctionMode,
    _get_current_function_mode_stack,
    _pop_mode,
    _push_mode,
)

from plugtron.platform import cpu_shims_mamba as _mamba
from plugtron.platform import cpu_shims_mla as _mla
from plugtron.platform import cpu_shims_moe as _moe

__all__ = ["SHIMS", "apply", "is_active"]

#: Ordered registry: shim name -> one-line reason (why Megatron-Core needs it on CPU).
SHIMS: dict[str, str] = {}
_FUNCS: dict[str, Callable[[], None]] = {}
_applied: list[str] = []
_excluded: set[str] = set()

_CPU = torch.device("cpu")


def _shim(name: str, reason: str):
    def register(fn: Callable[[], None]) -> Callable[[], None]:
        SHIMS[name] = reason
        _FUNCS[name] = fn
        return fn

    return register


# --------------------------------------------------------------------------- device remap


def _is_cuda_device(dev) -> bool:
    if isinstance(dev, torch.device):
        return dev.type == "cuda"
    if isinstance(dev, str):
        return dev.startswith("cuda")
    # A bare int device index means an accelerator ordinal.
    return isinstance(dev, int) and not isinstance(dev, bool)


def _tensor_to(args, kwargs):
    if len(args) > 1 and _is_cuda_device(args[1]):
        args = (args[0], _CPU, *args[2:])
    return args[0].to(*args[1:], **kwargs)


def _tensor_cuda(args, kwargs):
    # A CPU tensor "moved to the accelerator" stays where it is (like ``.to("cpu")``).
    kwargs.pop("device", None)
    return args[0].to(_CPU, **kwargs)


def _tensor_type(args, kwargs):
    self = args[0]
    if len(args) == 1 and not kwargs and not self.is_cuda:
        # Only Megatron's own checks see the CUDA spelling; everyone else gets the truth.
        caller = sys._getframe(2).f_globals.get("__name__", "")
        if caller.startswith("megatron."):
            return self.type().replace("torch.", "torch.cuda.", 1)
    return self.type(*args[1:], **kwargs)


_TENSOR_METHODS = {
    torch.Tensor.to: _tensor_to,
    torch.Tensor.cuda: _tensor_cuda,
    torch.Tensor.pin_memory: lambda args, kwargs: args[0],
}


class _CpuDeviceMode(TorchFunctionMode):
    """Rewrites CUDA devices to CPU in every torch call (factories, ``.to``, ``.cuda``)."""

    def __init__(self) -> None:
        super().__init__()
        self.methods = dict(_TENSOR_METHODS)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if kwargs:
            dev = kwargs.get("device")
            if dev is not None and _is_cuda_device(dev):
                kwargs = {**kwargs, "device": _CPU}
            if kwargs.get("pin_memory"):
                kwargs = {**kwargs, "pin_memory": False}
        else:
            kwargs = {}
        handler = self.methods.get(func)
        if handler is not None:
            return handler(args, kwargs)
        return func(*args, **kwargs)


_MODE = _CpuDeviceMode()


def _ensure_mode_on_this_thread() -> None:
    stack = _get_current_function_mode_stack()
    if any(mode is _MODE for mode in stack):
        return
    # Insert at the bottom so that modes entered later with ``with`` still pop their own.
    above = [_pop_mode() for _ in stack]
    _push_mode(_MODE)
    for mode in reversed(above):
        _push_mode(mode)


@_shim("device_remap", 'hard-coded device="cuda", .cuda() and .to("cuda") in schedules, optimizer, '
       "clip_grads, masks; pinned memory needs an accelerator")
def _device_remap() -> None:
    _ensure_mode_on_this_thread()


def _in_device_mode(fn):
    """Wrap ``fn`` so that it runs with the device remap on the mode stack."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if torch._C._len_torch_function_stack() and any(
            mode is _MODE for mode in _get_current_function_mode_stack()
        ):
            return fn(*args, **kwargs)
        _push_mode(_MODE)
        try:
            return fn(*args, **kwargs)
        finally:
            _pop_mode()

    return wrapper


@_shim("device_remap_backward", "autograd runs Python backward code (custom Functions, Megatron's "
       "activation recompute, tensor hooks) with no torch-function mode; re-enter the remap there")
def _device_remap_backward() -> None:
    from torch.autograd.function import BackwardCFunction

    BackwardCFunction.apply = _in_device_mode(BackwardCFunction.apply)
    BackwardCFunction.apply_boxed = _in_device_mode(BackwardCFunction.apply_boxed)
    register_hook = torch.Tensor.register_hook

    @functools.wraps(register_hook)
    def register_hook_in_device_mode(self, hook):
        return register_hook(self, _in_device_mode(hook))

    torch.Tensor.register_hook = register_hook_in_device_mode


@_shim("current_device", "torch.cuda.current_device() (grad buffers, p2p buffers, TP mappings) "
       "raises without CUDA; answer the CPU device")
def _current_device() -> None:
    torch.cuda.current_device = lambda: _CPU


@_shim("tensor_type", "Megatron asserts tensor.type() == 'torch.cuda.FloatTensor' (clip_grads, "
       "optimizer, distrib_optimizer); answer the CUDA spelling to Megatron callers only")
def _tensor_type_shim() -> None:
    _MODE.methods[torch.Tensor.type] = _tensor_type


# --------------------------------------------------------------------------- RNG


def _cuda_get_rng_state(device="cuda"):
    return torch.default_generator.get_state()


def _cuda_set_rng_state(new_state, device="cuda"):
    torch.default_generator.set_state(new_state)


def _cuda_manual_seed(seed):
    # Not torch.manual_seed: that calls torch.cuda.manual_seed_all, which is patched to this.
    torch.default_generator.manual_seed(int(seed))


@_shim("cuda_rng", "torch.cuda RNG get/set raise and manual_seed is silently dropped without "
       "CUDA; back them by the CPU generator")
def _cuda_rng() -> None:
    for module in (torch.cuda, torch.cuda.random):
        module.get_rng_state = _cuda_get_rng_state
        module.set_rng_state = _cuda_set_rng_state
        module.get_rng_state_all = lambda: [_cuda_get_rng_state()]
        module.set_rng_state_all = lambda states: _cuda_set_rng_state(states[0])
        module.manual_seed = _cuda_manual_seed
        module.manual_seed_all = _cuda_manual_seed


class _DropSharedGeneratorWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "CPU RNG state changed within GPU RNG context" not in record.getMessage()


@_shim("tp_rng_tracker", "Megatron's tensor-parallel RNG tracker (model_parallel_cuda_manual_seed, "
       "fork, activation recompute) sets CUDA RNG state via a lazy call that never runs on CPU")
def _tp_rng_tracker() -> None:
    from megatron.core.tensor_parallel import random as mrandom

    def get_state(device="cuda", clone=False, graph_safe=False):
        return torch.default_generator.get_state()

    def set_state(new_state, device=-1, graph_safe=False):
        torch.default_generator.set_state(new_state)

    mrandom._get_cuda_rng_state = get_state
    mrandom._set_cuda_rng_state = set_state
    # "CUDA" and CPU RNG are one generator here, so a fork always "changes the CPU state".
    logging.getLogger(mrandom.__name__).addFilter(_DropSharedGeneratorWarning())


# --------------------------------------------------------------------------- streams, MoE
# The stand-ins and patches live in cpu_shims_moe (the MoE alltoall dispatcher is their user).


@_shim("synchronize", "torch.cuda.synchronize raises without CUDA (PP batched p2p, Timers); "
       "CPU ops are already synchronous")
def _synchronize() -> None:
    torch.cuda.synchronize = lambda device=None: None


_shim("streams_events", "the MoE alltoall dispatcher uses torch.cuda.Stream/Event and "
      "record_stream for its device-to-host copies; use always-complete stand-ins")(
    _moe.patch_streams_events)

_shim("moe_te_general_gemm", "megatron-core 0.16.1 bug: moe_utils only defines te_general_gemm "
      "when TE imports, so the router raises NameError without TE")(_moe.patch_te_general_gemm)

_shim("moe_split_sizes", "maybe_move_tensor_to_cpu(as_numpy=True) only converts CUDA tensors, "
      "so all-to-all split sizes stay tensors and all_to_all_single raises TypeError")(
    _moe.patch_split_sizes)


# --------------------------------------------------------------------------- Mamba
# The pure-PyTorch kernels live in mamba_ssd / mamba_conv_norm, the patches in cpu_shims_mamba.

_shim("mamba_kernels", "MambaMixer needs the mamba_ssm/causal_conv1d CUDA kernels (SSD chunked scan, "
      "causal conv1d, gated RMSNorm, decode-step updates); use pure-PyTorch ones, same math")(
    _mamba.patch_mamba_kernels)

_shim("mamba_final_norm", "MambaStack builds its final norm with TENorm whatever the spec; without "
      "Transformer Engine use Megatron's torch LayerNorm/RMSNorm")(_mamba.patch_mamba_final_norm)


# --------------------------------------------------------------------------- multi-latent attention

_shim("mla_te_flag", "multi_latent_attention sets HAVE_TE from an import that succeeds with MagicMock "
      "stand-ins when TE is absent, then isinstance(..., TELinear) raises; give it HAVE_TE=False")(
    _mla.patch_mla_te_flag)


# --------------------------------------------------------------------------- sequence parallel


@_shim("sp_torch_norm", "the local-spec torch LayerNorm asserts not sequence_parallel; allow it and "
       "mark its params sequence_parallel=True so their grads are all-reduced over TP")
def _sp_torch_norm() -> None:
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    original = WrappedTorchNorm.__dict__["__new__"].__func__

    def __new__(cls, config, hidden_size, *args, **kwargs):
        if not config.sequence_parallel:
            return original(cls, config, hidden_size, *args, **kwargs)
        config.sequence_parallel = False
        try:
            norm = original(cls, config, hidden_size, *args, **kwargs)
        finally:
            config.sequence_parallel = True
        for param in norm.parameters():
            param.sequence_parallel = True
        return norm

    WrappedTorchNorm.__new__ = staticmethod(__new__)


# --------------------------------------------------------------------------- API


def apply(exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Apply every shim once; return the names of the shims applied (all calls so far).

    Returns ``()`` and patches nothing when CUDA is available. ``exclude`` is for ablation: the
    named shims stay off for the rest of the process, also through later ``apply()`` calls
    (excluding ``device_remap`` also excludes ``device_remap_backward``, which re-enters it).
    """
    if torch.cuda.is_available():
        return ()
    from plugtron.platform import quiet

    quiet.install_cpu()  # CUDA-only advice Megatron gives on every CPU run with TP > 1
    unknown = set(exclude) - set(SHIMS)
    if unknown:
        raise ValueError(f"unknown CPU shims: {sorted(unknown)}; known: {list(SHIMS)}")
    _excluded.update(exclude)
    if "device_remap" in _excluded:
        _excluded.add("device_remap_backward")
    for name, fn in _FUNCS.items():
        if name in _applied or name in _excluded:
            continue
        fn()
        _applied.append(name)
    if "device_remap" in _applied:
        _ensure_mode_on_this_thread()  # cheap; covers a call from a new thread
    return tuple(name for name in SHIMS if name in _applied)


def is_active() -> bool:
    """True once ``apply()`` has patched anything in this process."""
    return bool(_applied)
