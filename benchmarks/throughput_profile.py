"""Where a training step's time goes, per phase and op family (``throughput_vs_hf.py --profile N``).

Each side runs N steps under ``torch.profiler`` (CPU activity). Every profiled op's *self* time is
charged to a phase - backward when an autograd engine node is among its ancestors, optimizer under
``Optimizer.step``/``zero_grad``, forward otherwise - and to an op family by its name. What the ops'
self times do not cover is Python: Megatron's and transformers' module code, plugtron's CPU shims
(the torch-function mode runs in Python before every torch call), the data iterator. A cProfile
pass then lists the largest Python-side costs of each side.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections import defaultdict

FAMILIES = (  # first match wins; op names without the "aten::" prefix; "x*": any name starting with x
    ("matmul", ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "_mkldnn*")),
    ("attention (sdpa)", ("scaled_dot_product*", "_scaled_dot_product*", "_flash_attention*")),
    ("softmax / cross-entropy", ("softmax", "_softmax", "log_softmax", "nll_loss", "cross_entropy",
                                 "logsumexp")),
    ("copy / cat / layout", ("copy_", "cat", "clone", "contiguous", "_to_copy", "to", "stack", "transpose",
                             "view", "reshape", "permute", "t", "expand", "as_strided", "slice", "select",
                             "unsqueeze", "squeeze", "split", "chunk", "narrow", "_unsafe_view", "index",
                             "unbind", "detach", "alias", "embedding", "gather", "scatter")),
    ("rope sin/cos", ("sin", "cos", "outer", "arange", "polar")),
    ("fill / alloc", ("zero_", "zeros", "zeros_like", "empty", "empty_like", "fill_", "ones", "ones_like",
                      "new_zeros", "new_empty", "resize_", "full", "triu", "tril")),
)


def family(op: str) -> str:
    name = op.split("::", 1)[-1]
    for fam, names in FAMILIES:
        if name in names or any(n.endswith("*") and name.startswith(n[:-1]) for n in names):
            return fam
    return "elementwise / reductions" if op.startswith("aten::") else "other"


def phase(evt) -> str:
    p = evt
    while p is not None:
        n = p.name
        if n.startswith("autograd::engine::evaluate_function"):
            return "backward"
        if n.startswith("Optimizer.step") or n.startswith("Optimizer.zero_grad"):
            return "optimizer"
        p = p.cpu_parent
    return "forward / other"


def _is_op(evt) -> bool:
    return "::" in evt.name and not evt.name.startswith(("autograd::", "Optimizer", "ProfilerStep"))


def torch_profile(fn, n: int):
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        wall = (time.perf_counter() - t0) / n
    by_phase, by_family, by_op = defaultdict(float), defaultdict(float), defaultdict(float)
    for evt in prof.events():
        if not _is_op(evt):
            continue
        us = evt.self_cpu_time_total / n
        ph, fam = phase(evt), family(evt.name)
        by_phase[ph] += us
        by_family[(ph, fam)] += us
        by_op[(ph, evt.name)] += us
    return wall, by_phase, by_family, by_op


def python_profile(fn, n: int, top: int = 14) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    out = io.StringIO()
    st = pstats.Stats(prof, stream=out)
    out.write(f"(cProfile: {st.total_tt / n * 1000:.1f} ms/step with its own overhead)\n")
    st.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def profile_steps(steps, n: int) -> None:
    for name, fn in steps.items():
        wall, by_phase, by_family, by_op = torch_profile(fn, n)
        ops_ms = sum(by_phase.values()) / 1000
        print(f"==== {name}: {wall * 1000:.1f} ms/step under torch.profiler; ops' self time {ops_ms:.1f} ms, "
              f"Python and untraced {wall * 1000 - ops_ms:.1f} ms")
        for ph in ("forward / other", "backward", "optimizer"):
            print(f"  {ph:16s} {by_phase.get(ph, 0) / 1000:8.1f} ms")
            fams = sorted(((us, f) for (p, f), us in by_family.items() if p == ph), reverse=True)
            for us, fam in fams:
                if us >= 500:
                    print(f"      {us / 1000:8.1f} ms  {fam}")
        print("  top ops (phase, op: ms/step):")
        for (ph, op), us in sorted(by_op.items(), key=lambda kv: -kv[1])[:18]:
            print(f"      {us / 1000:8.1f} ms  {ph:16s} {op}")
        print(python_profile(fn, n))
