"""``plugtron plugins list`` without torch: the config is read with the loader, converter and rule
table `train` uses (``config.torch_free``; Megatron sections excepted), and plugin classes are
inspected, not instantiated."""

from __future__ import annotations

import inspect
from typing import Any, Dict, Iterable, List, Optional

from plugtron.errors import PlugtronError


def _lookup(sections: Any, path: str) -> Any:
    node: Any = sections
    for part in path.split("."):
        node = getattr(node, part, None)
    return node


def _hooks_of(target: Any) -> List[str]:
    from plugtron.plugin_manager import hook_names

    return [h for h in hook_names() if inspect.isroutine(getattr(target, h, None))]


def describe_plugins(config_path: Optional[str] = None, overrides: Iterable[str] = ()) -> List[Dict[str, Any]]:
    from plugtron.config import builtin_toggles
    from plugtron.config.loader import load_data
    from plugtron.config.torch_free import structure_sections
    from plugtron.plugin_manager import _dist_label, blocked_names, discover

    # Read exactly as `train` reads it (same loader, converter and rules), minus the torch sections.
    source = " + ".join(([str(config_path)] if config_path else []) + (["command line"] if overrides else [])) or "config"
    sections = structure_sections(load_data(config_path, overrides), source)
    toggles = {name: path for path, name in builtin_toggles()}
    third_party = sections.plugins
    blocked = set(blocked_names())
    rows = []
    for name, ep in sorted(discover().items()):
        try:
            hooks = _hooks_of(ep.load())
        except Exception as exc:  # listing must survive a broken plugin
            hooks = [f"<import failed: {type(exc).__name__}: {exc}>"]
        if name in toggles:
            enabled, toggle = bool(_lookup(sections, toggles[name])), toggles[name]
        else:
            enabled, toggle = False, f"plugins.{name}.enabled"
        if name in third_party and third_party[name].enabled:
            enabled = True
        rows.append({
            "name": name,
            "source": _dist_label(ep),
            "toggle": toggle,
            "enabled": enabled and name not in blocked,
            "blocked": name in blocked,
            "hooks": hooks,
        })
    return rows


__all__ = ["describe_plugins", "PlugtronError"]
