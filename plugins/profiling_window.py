"""What the three profiler plugins (``nsys_profiler``, ``pytorch_profiler``, ``memory_profiler``)
share: the rules of the ``profiling`` section, the profiled window and ranks, and the CUDA check.

Not a plugin itself (no entry point). The window is iterations ``profile_step_start`` to
``profile_step_end``, both included, numbered as in the log: iteration N is the N-th optimizer
step (a step about to run in ``on_step_start`` is ``state.iteration + 1``).
"""

from __future__ import annotations

from typing import List

from plugtron.errors import UnsupportedOnThisMachine


def window_problems(config) -> List[str]:
    """The ``profiling`` section's own rules (every profiler plugin reports them; the plugin checks
    print a rule once even when two profilers report it)."""
    p = config.profiling
    problems = []
    if p.use_nsys_profiler and p.use_pytorch_profiler:
        problems.append("profiling.use_nsys_profiler: the nsys and the PyTorch profiler cannot both be on "
                        "(each would time the other); set profiling.use_pytorch_profiler=false or this one false")
    if p.profile_step_start < 1:
        problems.append(f"profiling.profile_step_start: expected an iteration >= 1 (the first step is iteration 1, "
                        f"as in the log), got {p.profile_step_start}")
    if p.profile_step_end < p.profile_step_start:
        problems.append(f"profiling.profile_step_end: expected >= profiling.profile_step_start "
                        f"({p.profile_step_start}; both iterations are profiled), got {p.profile_step_end}")
    if not p.profile_ranks:
        problems.append("profiling.profile_ranks: expected at least one global rank (e.g. [0])")
    world = config.world_size
    outside = [r for r in p.profile_ranks if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r < world]
    if outside:
        problems.append(f"profiling.profile_ranks: {outside} not in this run's ranks 0..{world - 1} "
                        f"(world size {world})")
    return problems


def profiles_rank(config, rank: int) -> bool:
    return rank in config.profiling.profile_ranks


def in_window(config, iteration: int) -> bool:
    p = config.profiling
    return p.profile_step_start <= iteration <= p.profile_step_end


def cuda_available() -> bool:
    """This machine has a CUDA GPU (one function, so that tests can fake a GPU for these plugins only)."""
    import torch

    return torch.cuda.is_available()


def require_cuda(field: str, what: str) -> None:
    """``UnsupportedOnThisMachine`` naming ``field`` when this machine has no CUDA GPU (raised from
    the plugin's constructor: the plugins are loaded right after the config is validated)."""
    if not cuda_available():
        raise UnsupportedOnThisMachine(f"{field}: {what} needs a CUDA GPU; this machine has none "
                                       f"(set {field}=false, or run on a GPU machine)")
