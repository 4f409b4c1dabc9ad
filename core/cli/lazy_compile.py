"""Commands that only build and print a config (``config show``, ``recipes show``) need Megatron-Core's
classes, not its kernels. Importing ``megatron.core`` decorates its fused kernels with
``torch.compile`` (``megatron.core.jit.jit_fuser``), and that call alone imports ``torch._dynamo`` and
``torch._inductor``: measured 2.6 s of the 6.6 s CPU time of ``plugtron config show`` on this machine.

``deferred_torch_compile()`` makes those decorations lazy while Megatron is imported: a decorated
function calls the real ``torch.compile`` on its first call, which is when ``torch.compile`` itself
would compile it, so behaviour is the same if the process trains afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import sys


@contextlib.contextmanager
def deferred_torch_compile():
    """Within this block ``torch.compile(fn)`` returns a wrapper that compiles ``fn`` on first call.
    No effect when Megatron-Core is already imported (its decorations are done)."""
    if "megatron.core.jit" in sys.modules:
        yield
        return
    import torch

    real = torch.compile

    def deferred(fn=None, **options):
        if fn is None:  # used as @torch.compile(mode=...)
            return lambda f: deferred(f, **options)
        compiled = []

        @functools.wraps(fn)
        def call(*args, **kwargs):
            if not compiled:
                compiled.append(real(fn, **options))
            return compiled[0](*args, **kwargs)

        return call

    torch.compile = deferred
    try:
        yield
    finally:
        torch.compile = real
