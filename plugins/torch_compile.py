"""``torch.compile`` on the model (former NeMo ``JitTransform`` callback with ``JitConfig(use_torch=True)``).

Toggle: ``compile`` (the section present: ``compile: {}`` in YAML, ``compile={}`` on the command
line; off by default). Options (``CompileConfig``): ``scope`` ``layers`` (default: each transformer
or Mamba layer, one graph shared by every layer of the same kind) or ``model`` (each whole model
chunk), ``mode`` and ``dynamic`` (``torch.compile``'s), ``backend`` (``inductor`` by default).

In ``transform_model`` - after every other transform (PEFT adapters included), before the precision
wrapper and DDP - each part is compiled in place with ``nn.Module.compile``: the module keeps its
class, its parameters and its state-dict keys (no ``_orig_mod.`` prefix, unlike wrapping it in
``torch.compile(module)``), so checkpoints of compiled and uncompiled runs load into each other.
Compilation happens at a part's first call. A part the backend cannot compile (an error from Dynamo
or Inductor at that call) runs uncompiled from then on, with every other part of the same class,
after one warning naming it; errors of the model itself are raised as without the plugin. Inductor
on CPU needs a C++ compiler: without one the run stays uncompiled, with one warning.

Works with tensor and pipeline parallelism (the schedule calls the compiled layers; Megatron's
collectives run between graphs). Cost: the first step of each new shape compiles (seconds per layer
kind on CPU); later steps run the fused kernels. plugtron's eager-only RoPE and SwiGLU fast paths
(``plugtron.providers.unfused_fast_paths``) step aside inside a compiled graph, where Inductor fuses
Megatron's plain code itself. Speed on CPU: README, "Benchmarks" (``benchmarks/throughput_vs_hf.py
--compile``).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Tuple

from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")

LAYER = re.compile(r"(^|\.)layers\.\d+$")  # the items of Megatron's TransformerBlock / MambaStack ``layers``


class Compile:
    @staticmethod
    def config_problems(config) -> List[str]:
        """Checked by ``train``, ``config show`` and ``plugins list`` before anything is built (torch-free)."""
        c = config.compile
        if c.mode != "default" and c.backend != "inductor":
            return [f"compile.mode: {c.mode!r} is an Inductor mode; with compile.backend={c.backend!r} "
                    "leave it at 'default'"]
        return []

    def __init__(self, config):
        self.settings = config.compile
        self.unavailable = _why_unavailable(self.settings.backend)  # raises for an unknown backend
        self.compiled: List[str] = []  # the parts compiled, by module path ("chunk0.decoder.layers.0")
        self.fell_back: Dict[str, str] = {}  # class name -> why it runs uncompiled (observable in tests)
        self._parts: List[Tuple[str, Any]] = []

    @hookimpl(trylast=True)  # after every other transform: compile what they built (PEFT adapters too)
    def transform_model(self, config, model):
        from plugtron import distributed

        if self.unavailable:
            log.warning(f"compile: {self.unavailable}; the model runs uncompiled")
            return
        s = self.settings
        options = {"backend": s.backend, "dynamic": s.dynamic}
        if s.mode != "default":
            options["mode"] = s.mode
        _allow_warnings_in_graphs()
        for i, chunk in enumerate(model):
            for name, part in _parts(chunk, s.scope):
                part.compile(**options)  # sets part._compiled_call_impl, which nn.Module.__call__ runs instead
                # torch has no public hook around that call: wrap it so a compile error falls back to eager
                part._compiled_call_impl = _EagerOnFailure(self, part, part._compiled_call_impl)
                self._parts.append((f"chunk{i}.{name}" if name else f"chunk{i}", part))
        self.compiled = [name for name, _ in self._parts]
        if distributed.is_rank0():
            kinds = sorted({type(p).__name__ for _, p in self._parts})
            n = len(self._parts)
            log.info(f"compile: {n} {'part' if n == 1 else 'parts'} ({', '.join(kinds)}) with torch.compile backend={s.backend} "
                     f"mode={s.mode} scope={s.scope}; each compiles at its first call")

    def fall_back(self, part, exc: BaseException) -> None:
        """Run ``part`` and every compiled part of its class uncompiled, after one warning."""
        kind = type(part).__name__
        names = [n for n, p in self._parts if type(p) is type(part)]
        for _, p in self._parts:
            if type(p) is type(part):
                p._compiled_call_impl = None
        self.fell_back[kind] = _one_line(exc)
        log.warning(f"compile: could not compile {kind} ({names[0]}{f' and {len(names) - 1} more' if len(names) > 1 else ''}): "
                    f"{self.fell_back[kind]}; they run uncompiled (the rest stays compiled)")


def _one_line(exc: BaseException) -> str:
    """``BackendCompilerFailed (RuntimeError: what the backend said)``: the error and its cause, one line."""
    inner = getattr(exc, "inner_exception", None)  # Dynamo wraps a backend's own error
    what = inner if isinstance(inner, BaseException) else exc
    first = (str(what).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__} ({type(what).__name__}: {first})" if what is not exc else f"{type(exc).__name__}: {first}"


def _parts(chunk, scope: str) -> List[Tuple[str, Any]]:
    """(path, module) to compile in ``chunk``: its layers, or the chunk itself (also a chunk without layers)."""
    if scope == "layers":
        layers = [(n, m) for n, m in chunk.named_modules() if LAYER.search(n)]
        if layers:
            return layers
    return [("", chunk)]


class _EagerOnFailure:
    """A part's compiled call; on a compile error, the part's plain call (and the plugin's fallback)."""

    def __init__(self, plugin: Compile, part, compiled):
        self.plugin, self.part, self.compiled = plugin, part, compiled

    def __call__(self, *args, **kwargs):
        try:
            return self.compiled(*args, **kwargs)
        except _compile_errors() as exc:
            self.plugin.fall_back(self.part, exc)
            return self.part._call_impl(*args, **kwargs)


def _compile_errors() -> tuple:
    """Errors that mean "this could not be compiled" (Dynamo's own, Inductor's lowering and C++ build)."""
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import CppCompileError, InvalidCxxCompiler, OperatorIssue

    return TorchDynamoException, CppCompileError, InvalidCxxCompiler, OperatorIssue


def _why_unavailable(backend: str) -> str:
    """'' if ``backend`` can compile here; else why not (one line). An unknown backend is a config error."""
    import torch
    from torch._dynamo import list_backends

    from plugtron.errors import ConfigError

    known = list_backends(exclude_tags=())
    if backend not in known:
        raise ConfigError([f"compile.backend: expected a torch.compile backend ({', '.join(known)}), got {backend!r}"])
    if backend == "inductor" and not torch.cuda.is_available():
        from torch._inductor.cpp_builder import get_cpp_compiler

        try:
            get_cpp_compiler()
        except Exception as exc:  # InvalidCxxCompiler, or whatever the search raises
            return (f"Inductor needs a C++ compiler on CPU and found none ({type(exc).__name__}; install g++ "
                    "or set CXX), or use compile.backend=aot_eager")
    return ""


def _allow_warnings_in_graphs() -> None:
    """Megatron's row-parallel linear calls ``warnings.warn`` (a ``DeprecationWarning``, hidden by
    Python's default filters) on every forward; Dynamo would split each layer's graph there (twice per
    layer). Inside compiled code Dynamo now skips ``warnings.warn`` calls instead (process-wide; code
    that is not compiled warns as before)."""
    import warnings

    import torch._dynamo

    torch._dynamo.config.ignore_logging_functions.add(warnings.warn)
