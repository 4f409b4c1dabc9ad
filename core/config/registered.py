"""Options of registered entries a config picks (an optimizer's, a data format's): structured by the
entry's own ``Options`` attrs class with the core converter (unknown keys and wrong types refused),
checked by the same rule functions, and written back with their defaults filled in, so ``config
show`` reports every option in effect. Run by ``ConfigContainer.validate()``.
"""

from __future__ import annotations

import re
from typing import Any, List

from plugtron.errors import ConfigError, PlugtronError


def _problems_of(exc: PlugtronError) -> List[str]:
    """Problems as full paths: ``optimizer_options.beta3: unknown key`` (the converter names the key
    inside the options; ``source`` is where the options live)."""
    if isinstance(exc, ConfigError):
        return [p if exc.source == "config" or p.startswith(exc.source)
                else f"{exc.source}.{p}" if re.match(r"[\w.\[\]]+: ", p) else f"{exc.source}: {p}"
                for p in exc.problems]
    return [str(exc)]


def rule_problems(options: Any, prefix: str) -> List[str]:
    """The entry's own value rules, ``RULES = {"field": rule}`` on its ``Options`` class, with the
    core rule objects (``plugtron.config.rules``: ``Range``, ``OneOf``, ...), reported like the core's."""
    from plugtron.config import rules

    own = getattr(type(options), "RULES", None) if options is not None else None
    return [f"{prefix}.{p}" for p in rules.check(options, own)] if own else []


def _unstructured(options: Any) -> dict:
    from plugtron.config.converter import unstructure

    return unstructure(options) if options is not None else {}


def check_registered_options(cfg: Any, problems: List[str]) -> None:
    """Optimizer options (``optimizer_options``) and data-format options (``dataset.format_options``)."""
    from plugtron import registry

    name = cfg.optimizer.optimizer
    if isinstance(name, str) and name in registry.entries("optimizer"):  # unknown names: the rule table says so
        from plugtron import optimizers  # torch-free module (Megatron only inside build)

        try:
            cls = optimizers.optimizer_class(name)
            options = optimizers.structure_options(cls, cfg.optimizer_options)
            problems.extend(rule_problems(options, "optimizer_options"))
            cfg.optimizer_options = _unstructured(options)
            problems.extend(optimizers.config_problems(cfg, cls))
            own = getattr(cls, "config_problems", None)
            problems.extend(own(cfg) if own is not None else [])
        except PlugtronError as exc:
            problems.extend(_problems_of(exc))
    ds = cfg.dataset
    from plugtron.data.pretraining_formats import format_name, section_problem

    name = format_name(ds) if hasattr(ds, "format_options") else None
    if isinstance(name, str) and name in registry.entries("data_format"):
        from plugtron.data.sft_examples import format_options

        try:
            cls = registry.load("data_format", name, "dataset.data_format")
            wrong = section_problem(ds, cls)  # an SFT format on a pretraining section, or the reverse
            if wrong:
                problems.append(wrong)
                return
            options = format_options(cls, ds.format_options)
            problems.extend(rule_problems(options, "dataset.format_options"))
            ds.format_options = _unstructured(options)
        except PlugtronError as exc:
            problems.extend(_problems_of(exc))
