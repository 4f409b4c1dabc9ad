"""DeepEP / HybridEP flex token dispatcher (former NeMo ``DeepEPCallback``; Megatron Bridge's
``apply_flex_dispatcher_backend`` / ``validate_flex_dispatcher_backend``).

Toggle: ``deepep`` (the section present: ``deepep: {}``, or ``deepep: {backend: hybridep}``).
For an MoE model, before it is built (``configure_model``) it sets
``moe_token_dispatcher_type="flex"``, ``moe_flex_dispatcher_backend=<deepep.backend>`` and
``moe_shared_expert_overlap=False`` (Megatron overlaps shared experts only with ``alltoall``). A
dense model (no ``model.num_moe_experts``) gets one warning and nothing else.

Where it runs - one table, ``SUPPORTED``: DeepEP on compute capability 8.x (Ampere) and 9.x
(Hopper) and on Blackwell B200/B300 (by device name); HybridEP on 8.x, 9.x and 10.x. Both need the
``deep_ep`` package. Anywhere else (another GPU, no GPU, no ``deep_ep``) the run stops when the
plugins load, before anything is built, with an error naming ``deepep``; with
``deepep.fallback_to_alltoall: true`` it instead uses the ``alltoall`` dispatcher and logs one warning.

A model field you set yourself that contradicts this (``model.moe_token_dispatcher_type`` other than
``flex``, another ``model.moe_flex_dispatcher_backend``, ``model.moe_shared_expert_overlap=true``)
is a config error naming both, never silently overridden; so is ``moe_token_drop`` (it needs ``alltoall``).

In Python, as the guide shows it: ``apply_deepep(provider)`` and ``validate_deepep(provider)``.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import List, Optional, Tuple

from plugtron.errors import UnsupportedOnThisMachine
from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")

#: backend -> (CUDA compute capability majors, device-name prefixes also supported).
SUPPORTED = {
    "deepep": ((8, 9), ("NVIDIA B200", "NVIDIA B300")),
    "hybridep": ((8, 9, 10), ()),
}

Gpu = Optional[Tuple[int, str]]  # (compute capability major, device name); None: no CUDA GPU


def this_gpu() -> Gpu:
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return props.major, props.name


def have_deep_ep() -> bool:
    return importlib.util.find_spec("deep_ep") is not None


def gpu_problem(backend: str, gpu: Gpu, package: bool) -> Optional[str]:
    """Why ``backend`` cannot run here (``None``: it can)."""
    majors, names = SUPPORTED[backend]
    where = "compute capability " + "/".join(f"{m}.x" for m in majors) + "".join(f", {n}" for n in names)
    if gpu is None:
        return f"the flex dispatcher's {backend} backend needs a CUDA GPU ({where}); this machine has none"
    major, name = gpu
    if major not in majors and not (names and name.startswith(names)):
        return f"the flex dispatcher's {backend} backend runs on {where}; this GPU is {name} (compute capability {major}.x)"
    if not package:
        return f"the flex dispatcher's {backend} backend needs the deep_ep package (DeepEP), which is not installed"
    return None


def _refusal(problem: str) -> UnsupportedOnThisMachine:
    return UnsupportedOnThisMachine(f"deepep: {problem}; remove the deepep section, or set "
                                    "deepep.fallback_to_alltoall=true to use the alltoall dispatcher instead")


def _is_moe(provider) -> bool:
    return bool(getattr(provider, "num_moe_experts", None))


def apply_deepep(provider, backend: str = "deepep", fallback_to_alltoall: bool = False, gpu="auto") -> str:
    """Set the flex dispatcher with ``backend`` on an MoE ``provider`` (before it builds a model).

    Returns what it set: ``"flex"``, ``"alltoall"`` (the fallback, one warning) or ``"dense"``
    (nothing: not an MoE model, one warning). ``UnsupportedOnThisMachine`` naming ``deepep`` where
    the backend cannot run and no fallback is asked. ``gpu``: ``(major, name)`` or ``None`` to
    decide for another machine; ``"auto"`` looks at this one."""
    if not _is_moe(provider):
        log.warning("deepep: the model is dense (model.num_moe_experts is not set); the flex dispatcher is for MoE models")
        return "dense"
    problem = gpu_problem(backend, this_gpu() if gpu == "auto" else gpu, have_deep_ep())
    if problem and not fallback_to_alltoall:
        raise _refusal(problem)
    if problem:
        log.warning(f"deepep: {problem}; using the alltoall dispatcher instead (deepep.fallback_to_alltoall)")
        provider.moe_token_dispatcher_type = "alltoall"
        return "alltoall"
    provider.moe_token_dispatcher_type = "flex"
    provider.moe_flex_dispatcher_backend = backend
    provider.moe_shared_expert_overlap = False
    return "flex"


def validate_deepep(provider, gpu="auto") -> None:
    """``UnsupportedOnThisMachine`` when ``provider`` uses the flex dispatcher and its backend cannot run here."""
    if getattr(provider, "moe_token_dispatcher_type", None) != "flex":
        return
    backend = provider.moe_flex_dispatcher_backend
    problem = gpu_problem(backend, this_gpu() if gpu == "auto" else gpu, have_deep_ep())
    if problem:
        raise UnsupportedOnThisMachine(f"model.moe_flex_dispatcher_backend: {problem}")


class DeepEP:
    @staticmethod
    def config_problems(config) -> List[str]:
        """Checked by ``train``, ``config show`` and ``plugins list`` before anything is built."""
        m, backend = config.model, config.deepep.backend
        if not _is_moe(m):
            return []
        wanted = {"moe_token_dispatcher_type": "flex", "moe_flex_dispatcher_backend": backend,
                  "moe_shared_expert_overlap": False}
        problems = []
        for name, value in wanted.items():
            where = config.is_user_set(f"model.{name}")
            if where and getattr(m, name) != value:
                why = " (Megatron overlaps shared experts only with alltoall)" if name == "moe_shared_expert_overlap" else ""
                problems.append(f"model.{name}: set to {getattr(m, name)!r} in {where}, but the deepep section sets "
                                f"{value!r} (flex dispatcher, {backend}){why}; remove one of the two")
        if config.moe_token_drop is not None:
            problems.append("deepep: cannot be combined with moe_token_drop (token dropping needs the alltoall "
                            "dispatcher); remove one of the two sections")
        return problems

    def __init__(self, config):
        self.settings = config.deepep
        self.applied: Optional[str] = None  # "flex" / "alltoall" / "dense"; observable in tests
        if _is_moe(config.model) and not self.settings.fallback_to_alltoall:
            problem = gpu_problem(self.settings.backend, this_gpu(), have_deep_ep())
            if problem:  # stop now, before the process groups and the model exist
                raise _refusal(problem)

    @hookimpl
    def configure_model(self, config, provider):
        self.applied = apply_deepep(provider, self.settings.backend, self.settings.fallback_to_alltoall)
