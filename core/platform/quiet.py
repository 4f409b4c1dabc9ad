"""Warnings a plugtron user cannot act on, hidden by the ``plugtron`` command (one table).

Each entry names where the warning comes from (the module Python attributes it to, a regular
expression matched from its start; ``""``: any module) and the start of its message (a regular
expression, case-insensitive, as ``warnings.filterwarnings`` reads it). plugtron's own warnings and
every warning not listed here stay visible. ``plugtron --verbose`` (or ``logger.logging_level=10`` (DEBUG)
for what is emitted after the config is read) shows them all again.

Torch-free: the CLI installs the table before anything imports torch or Megatron (several of these
are emitted at import time). ``PYTHONWARNINGS`` carries the same filters into the helper processes
Megatron's checkpointing starts, which import Megatron again. One process it cannot reach: torchrun's
launcher, which imports torch (and so pynvml) before any plugtron code runs (docs/launching.md).
"""

from __future__ import annotations

import os
import re
import warnings
from typing import NamedTuple, Type


class Filter(NamedTuple):
    category: Type[Warning]
    module: str  # regex from the start of the emitting module's name; "" = any module
    message: str  # regex from the start of the message
    why: str  # why a user cannot act on it


FILTERS = (
    Filter(UserWarning, r"megatron\.", r"Apex is not installed",
           "Megatron falls back to torch's norms; Apex is a CUDA-only build, absent on CPU by design"),
    Filter(UserWarning, r"megatron\.", r"Transformer Engine and Apex are not installed",
           "Megatron falls back to its local kernels; TE is optional (the te extra) and needs a GPU"),
    Filter(UserWarning, r"megatron\.", r"full scope is deprecated",
           "Megatron's own default for cuda_graph_scope triggers it; CUDA graphs are off"),
    Filter(FutureWarning, r"torch\.cuda", r"The pynvml package is deprecated",
           "torch imports pynvml when installed; plugtron does not use it"),
    Filter(FutureWarning, "", r"Please use DTensor instead and we are deprecating ShardedTensor",
           "Megatron's distributed checkpoints use ShardedTensor on every load; nothing to change in a config"),
    Filter(FutureWarning, r"megatron\.", r"`load_state_dict` is deprecated and will be removed",
           "Megatron's checkpoint reader calls torch's deprecated loader"),
    Filter(FutureWarning, r"megatron\.", r"`save_state_dict` is deprecated and will be removed",
           "Megatron's checkpoint writer calls torch's deprecated saver"),
    Filter(FutureWarning, r"torch\.distributed", r"`torch\.distributed\.reduce_scatter_tensor` is deprecated",
           "Megatron's distributed optimizer calls it (SFT/PEFT recipes); nothing to change in a config"),
    Filter(FutureWarning, r"torch\.distributed", r"`torch\.distributed\.all_gather_into_tensor` is deprecated",
           "Megatron's distributed optimizer calls it (SFT/PEFT recipes); nothing to change in a config"),
)


# Hidden only where CUDA is absent (``install_cpu``, called by the CPU shims): on a GPU they are advice.
CPU_FILTERS = (
    Filter(UserWarning, r"megatron\.", r"When using async grad allreduce it is recommended to set the environment "
           r"variable CUDA_DEVICE_MAX_CONNECTIONS",
           "a CUDA stream setting (TP > 1); without CUDA there are no streams to order"),
)
_installed = False


def install() -> None:
    """Hide the table's warnings in this process and in processes it starts (``PYTHONWARNINGS``)."""
    global _installed
    _installed = True
    for f in FILTERS:
        warnings.filterwarnings("ignore", message=f.message, category=f.category, module=f.module)
    # -W syntax for children: message and module are literal there (not regexes), the category a
    # builtin name; the message prefix up to the first regex character is enough to match.
    inherited = [f"ignore:{_literal_prefix(f.message)}:{f.category.__name__}" for f in FILTERS]
    current = os.environ.get("PYTHONWARNINGS", "")
    os.environ["PYTHONWARNINGS"] = ",".join([current, *inherited] if current else inherited)


def install_cpu() -> None:
    """``CPU_FILTERS`` too, when the table is installed (not ``--verbose``); the CPU shims call it."""
    if _installed:
        for f in CPU_FILTERS:
            warnings.filterwarnings("ignore", message=f.message, category=f.category, module=f.module)


def uninstall() -> None:
    """Show every warning again (``--verbose``, ``logger.logging_level=10`` (DEBUG))."""
    global _installed
    _installed = False
    ours = {(f.message, f.category) for f in FILTERS + CPU_FILTERS}
    warnings.filters[:] = [w for w in warnings.filters
                           if not (w[0] == "ignore" and w[1] is not None and (w[1].pattern, w[2]) in ours)]
    mine = {f"ignore:{_literal_prefix(f.message)}:{f.category.__name__}" for f in FILTERS}
    kept = [w for w in os.environ.get("PYTHONWARNINGS", "").split(",") if w and w not in mine]
    if kept:
        os.environ["PYTHONWARNINGS"] = ",".join(kept)
    else:
        os.environ.pop("PYTHONWARNINGS", None)


def _literal_prefix(pattern: str) -> str:
    """The part of ``pattern`` before its first regex metacharacter, unescaped."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
            continue
        if ch in ".^$*+?{}[]|()":
            break
        out.append(ch)
        i += 1
    return "".join(out).replace(":", "")


def hidden(category: Type[Warning], module: str, message: str) -> bool:
    """Whether the table hides a warning (for tests and docs)."""
    return any(issubclass(category, f.category) and re.match(f.module, module) and re.match(f.message, message, re.I)
               for f in FILTERS)
