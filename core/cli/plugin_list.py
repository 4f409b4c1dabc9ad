"""``plugtron plugins list`` without torch: toggles are read from the YAML/override data over the
torch-free sections' defaults, and plugin classes are inspected, not instantiated."""

from __future__ import annotations

import inspect
from typing import Any, Dict, Iterable, List, Optional

import attrs

from plugtron.errors import PlugtronError


def _default_at(path: str) -> Any:
    from plugtron.config.container import ConfigContainer

    cls, value = ConfigContainer, None
    for part in path.split("."):
        field = attrs.fields_dict(cls)[part]
        value = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default
        cls = field.type if isinstance(field.type, type) else None
        if cls is None:
            break
    return value


def _lookup(data: Dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _default_at(path)
        node = node[part]
    return node


def _hooks_of(target: Any) -> List[str]:
    from plugtron.plugin_manager import hook_names

    return [h for h in hook_names() if inspect.isroutine(getattr(target, h, None))]


def describe_plugins(config_path: Optional[str] = None, overrides: Iterable[str] = ()) -> List[Dict[str, Any]]:
    from plugtron.config import builtin_toggles, yaml_io
    from plugtron.config.loader import deep_merge, parse_overrides
    from plugtron.plugin_manager import distribution_label, blocked_names, discover

    data: Dict[str, Any] = yaml_io.load_file(config_path) if config_path else {}
    data = deep_merge(data, parse_overrides(overrides))
    toggles = {name: path for path, name in builtin_toggles()}
    third_party = data.get("plugins") or {}
    blocked = set(blocked_names())
    rows = []
    for name, ep in sorted(discover().items()):
        try:
            hooks = _hooks_of(ep.load())
        except Exception as exc:  # listing must survive a broken plugin
            hooks = [f"<import failed: {type(exc).__name__}: {exc}>"]
        if name in toggles:
            enabled, toggle = bool(_lookup(data, toggles[name])), toggles[name]
        else:
            enabled = bool((third_party.get(name) or {}).get("enabled", False))
            toggle = f"plugins.{name}.enabled"
        if name in third_party and (third_party.get(name) or {}).get("enabled"):
            enabled = True
        rows.append({
            "name": name,
            "source": distribution_label(ep),
            "toggle": toggle,
            "enabled": enabled and name not in blocked,
            "blocked": name in blocked,
            "hooks": hooks,
        })
    return rows


__all__ = ["describe_plugins", "PlugtronError"]
