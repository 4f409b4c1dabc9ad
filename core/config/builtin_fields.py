"""Which core config fields configure each built-in plugin (``plugtron plugins show NAME`` lists
them with their types, defaults and current values). A built-in's settings live in the core
sections (Megatron Bridge's field names), not in ``plugins.<name>.options``.

The toggle always counts. A toggle that is a whole section (``deepep``) or sits in a section of its
own (``straggler.log_straggler``) brings every field of that section; the others are listed in
``EXTRA`` (one table). ``tests/test_plugins_show.py`` checks every path exists. Torch-free.
"""

from __future__ import annotations

import typing
from typing import Any, Dict, List, Tuple

import attrs

# Sections that belong to one built-in as a whole (besides the section-valued toggles).
OWN_SECTIONS = {"straggler": "straggler", "fault_tolerance": "ft"}

PROFILER_WINDOW = ("profiling.profile_step_start", "profiling.profile_step_end", "profiling.profile_ranks")
EXTRA: Dict[str, Tuple[str, ...]] = {
    "manual_gc": ("train.manual_gc_interval", "train.manual_gc_eval"),
    "preemption": ("train.exit_signal", "checkpoint.save"),
    "nan_guard": ("train.check_for_spiky_loss", "train.spiky_loss_factor", "train.spiky_loss_action"),
    "metrics_file": ("logger.metrics_dir", "checkpoint.save"),
    "tensorboard": ("logger.tensorboard_log_interval", "logger.log_validation_ppl_to_tensorboard"),
    "wandb": ("logger.wandb_exp_name", "logger.wandb_entity", "logger.wandb_save_dir", "logger.wandb_mode"),
    "mlflow": ("logger.mlflow_run_name", "logger.mlflow_tags", "logger.mlflow_tracking_uri"),
    "pytorch_profiler": PROFILER_WINDOW + ("profiling.record_shapes", "profiling.pytorch_profiler_collect_callstack",
                                           "profiling.pytorch_profiler_profile_memory", "profiling.trace_dir"),
    "nsys_profiler": PROFILER_WINDOW + ("profiling.record_shapes", "profiling.nvtx_ranges"),
    "memory_profiler": ("profiling.profile_step_end", "profiling.profile_ranks", "profiling.memory_snapshot_path"),
}


def _field_at(path: str) -> Tuple[type, attrs.Attribute]:
    """(declaring class, attrs field) of a dotted path from ``ConfigContainer``."""
    from plugtron.config.container import ConfigContainer

    cls: Any = ConfigContainer
    *parents, last = path.split(".")
    for part in parents:
        cls = _resolved_type(cls, attrs.fields_dict(cls)[part])
    return cls, attrs.fields_dict(cls)[last]


def _resolved_type(cls: type, field: attrs.Attribute) -> Any:
    kind = typing.get_type_hints(cls)[field.name] if isinstance(field.type, str) else field.type
    sections = [a for a in (typing.get_args(kind) or (kind,)) if isinstance(a, type) and attrs.has(a)]
    return sections[0] if sections else kind


def fields_of(name: str, toggle: str) -> List[str]:
    """The dotted paths configuring built-in ``name`` whose toggle is ``toggle``."""
    paths = [toggle]
    section = OWN_SECTIONS.get(name, toggle if "." not in toggle else None)
    if section is not None:
        cls = _resolved_type(*_field_at(section))
        if attrs.has(cls):
            paths += [f"{section}.{f.name}" for f in attrs.fields(cls) if f"{section}.{f.name}" != toggle]
    paths += [p for p in EXTRA.get(name, ()) if p not in paths]
    return paths


def describe(path: str) -> Tuple[str, str]:
    """(type, default) of the field at ``path``, as ``plugins show`` prints them."""
    cls, field = _field_at(path)
    kind = typing.get_type_hints(cls)[field.name] if isinstance(field.type, str) else field.type
    default = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default
    name = kind.__name__ if isinstance(kind, type) else str(kind).replace("typing.", "").replace("plugtron.config.extras.", "")
    return name, repr(default)
