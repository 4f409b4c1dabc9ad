"""A built-in plugin switched on by name (``plugins.deepep.enabled=true``) is switched on exactly as
its own toggle would be: the toggle field gets its "on" value, so the plugin sees the settings it
expects (a section's defaults: ``deepep: {}``) and ``config show`` prints what runs.

The "on" value of a toggle, by the field's type (one table, ``_on_value``):

- an optional section (``comm_overlap``, ``moe_token_drop``, ``deepep``, ``peft``): the section
  with its defaults;
- a flag (``train.manual_gc``, ``profiling.use_pytorch_profiler``, ...): ``true``;
- a value no default can stand for (``logger.tensorboard_dir``, ``logger.wandb_project``,
  ``logger.mlflow_experiment``, ``train.check_weight_hash_across_dp_replicas_interval``): a config
  error naming the field to set instead.

A toggle that is already on is left as it is. Torch-free.
"""

from __future__ import annotations

import typing
from typing import Any, List, Tuple

import attrs

NO_DEFAULT = object()


def _field(cfg: Any, path: str) -> Tuple[Any, attrs.Attribute]:
    """The object holding the last part of ``path`` and that part's attrs field."""
    *parents, last = path.split(".")
    owner = cfg
    for part in parents:
        owner = getattr(owner, part)
    return owner, attrs.fields_dict(type(owner))[last]


def _on_value(owner_cls: type, field: attrs.Attribute) -> Any:
    kind = field.type
    if isinstance(kind, str):  # a module with postponed annotations (the torch-free sections)
        kind = typing.get_type_hints(owner_cls)[field.name]
    if kind is bool:
        return True
    section = [a for a in typing.get_args(kind) if isinstance(a, type) and attrs.has(a)]
    return section[0]() if section else NO_DEFAULT


def switch_on_by_name(cfg: Any) -> List[str]:
    """Give every built-in enabled through ``plugins.<name>.enabled`` its toggle's "on" value (in
    place); returns the problems (toggles without one). The toggles are read off ``type(cfg)`` (the
    same list as ``builtin_toggles()`` for a ``ConfigContainer``): this module is imported by
    ``validation``, which ``container`` imports, so it must not import ``container`` back."""
    from plugtron.config._fields import iter_toggles

    problems = []
    for path, name in iter_toggles(type(cfg)):
        settings = cfg.plugins.get(name)
        if settings is None or not settings.enabled:
            continue
        owner, field = _field(cfg, path)
        if getattr(owner, field.name):
            continue  # already on through its own field
        value = _on_value(type(owner), field)
        if value is NO_DEFAULT:
            problems.append(f"plugins.{name}.enabled: the built-in {name!r} is switched on by {path}, which needs a "
                            f"value of yours (it has no default); set {path} instead")
        else:
            setattr(owner, field.name, value)
    return problems
