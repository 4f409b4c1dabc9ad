"""One readable line for a failed checkpoint read.

torch's ``CheckpointException`` (raised by ``dist_checkpointing.load`` and a ``BaseException``)
carries each rank's exception and traceback and prints them all in its ``str``: cut to a few
hundred characters, that shows a traceback's first frames and never the cause. ``describe`` finds
the exception that actually went wrong (the failing rank's, at the end of its cause chain) and
names it with its whole message. Callers raise ``CheckpointError(...) from exc`` so ``plugtron
--traceback`` prints the full chain, per-rank tracebacks included.
"""

from __future__ import annotations

from typing import List

MAX_CHARS = 2000  # a message longer than this (e.g. thousands of missing keys) is cut, and says so


def root_causes(exc: BaseException) -> List[BaseException]:
    """The innermost exceptions behind ``exc``: each rank's for a CheckpointException (lowest rank
    first), following ``__cause__``/``__context__`` to the end."""
    failures = getattr(exc, "failures", None)
    if isinstance(failures, dict) and failures:
        out = []
        for rank in sorted(failures):
            wrapped = failures[rank]
            inner = wrapped[0] if isinstance(wrapped, tuple) and wrapped else wrapped
            if isinstance(inner, BaseException):
                out.extend(root_causes(inner))
        if out:
            return out
    seen = {id(exc)}
    while True:
        nxt = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if nxt is None or id(nxt) in seen:
            return [exc]
        seen.add(id(nxt))
        exc = nxt


def _one(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # one line: Megatron's messages span several
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + f" ... ({len(text) - MAX_CHARS} more characters; --traceback shows all)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe(exc: BaseException) -> str:
    """``Type: whole message`` of the real cause; ranks failing for different reasons are each named."""
    causes = root_causes(exc)
    seen, parts = set(), []
    for cause in causes:
        line = _one(cause)
        if line not in seen:
            seen.add(line)
            parts.append(line)
    return "; ".join(parts)
