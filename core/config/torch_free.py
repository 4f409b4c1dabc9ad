"""The sections of a config that can be checked without torch or Megatron-Core.

``plugtron plugins list`` must answer without importing torch, yet read a config exactly as
``train`` does: a value ``train`` rejects (``train.manual_gc=no``) must not show a plugin as
enabled. So it structures every section whose class is plugtron's own (train, checkpoint,
profiling, plugins, ...) with the same converter and applies the same rule table. The Megatron
sections (``model``, ``optimizer``, ``ddp``) and dtype-bearing ``mixed_precision`` need torch and
are left to ``train`` / ``config show``.
"""

from __future__ import annotations

import difflib
from types import SimpleNamespace
from typing import Any, Dict, List

import attrs

from plugtron.errors import ConfigError

TORCH_SECTIONS = ("model", "optimizer", "ddp", "mixed_precision")


def structure_sections(data: Dict[str, Any], source: str) -> SimpleNamespace:
    """Every torch-free section of ``data`` structured (defaults where absent); one ``ConfigError``
    with the problems ``train`` would report for them."""
    from plugtron.config import rules
    from plugtron.config.container import ConfigContainer
    from plugtron.config.converter import collect_problems, converter

    fields = {f.name: f for f in attrs.fields(ConfigContainer) if f.init}
    problems: List[str] = []
    sections: Dict[str, Any] = {}
    for key in data:
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            problems.append(f"{key}: unknown key{hint}; ConfigContainer has no field '{key}'")
    for name, f in fields.items():
        if name in TORCH_SECTIONS:
            continue
        if name not in data:
            sections[name] = f.default.factory() if isinstance(f.default, attrs.Factory) else f.default
            continue
        try:
            sections[name] = converter().structure(data[name], f.type)
        except Exception as exc:  # cattrs groups and our leaf errors, as in converter.structure
            problems.extend(collect_problems(exc, name))
    if problems:
        raise ConfigError(problems, source=source)
    view = SimpleNamespace(**sections)
    problems = rules.check(view, {k: v for k, v in rules.RULES.items() if k.split(".")[0] not in TORCH_SECTIONS})
    if problems:
        raise ConfigError(problems, source=source)  # as validate() renders rule problems: the same message as train
    return view
