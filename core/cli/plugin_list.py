"""``plugtron plugins list`` / ``plugins show`` without torch: toggles are read from the YAML/override
data over the torch-free sections' defaults, plugin classes are inspected, not instantiated, and the
enabled plugins go through the same static checks as ``train`` (``plugin_checks``) on a torch-free
view of the config (:class:`ConfigView`)."""

from __future__ import annotations

import inspect
import typing
from types import SimpleNamespace
from typing import Any, Dict, Iterable, List, Optional, Tuple

import attrs

from plugtron.errors import PlugtronError


def _default_at(path: str) -> Any:
    from plugtron.config.container import ConfigContainer

    cls, value = ConfigContainer, None
    for part in path.split("."):
        field = attrs.fields_dict(cls)[part]
        value = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default
        kind = field.type  # a section, or an optional one (``Optional[CompileConfig]``: its defaults when given as {})
        sections = [a for a in (typing.get_args(kind) or (kind,)) if isinstance(a, type) and attrs.has(a)]
        cls = sections[0] if sections else None
        if cls is None:
            break
    return value


class ConfigView:
    """Attribute access over the recipe's torch-free sections merged with the YAML/override data
    (recipe < YAML < overrides, as ``train`` merges them), falling back to the sections' defaults, for
    plugins' ``config_problems`` without building a ``ConfigContainer`` (which needs Megatron).
    ``plugins`` is the structured ``{name: PluginSettings}`` that ``train`` has. In the
    Megatron-typed sections (``model``, ``optimizer``, ``ddp``) only values the user gave are
    visible; anything else reads as ``None``."""

    _MEGATRON = ("model", "optimizer", "ddp")

    def __init__(self, data: Dict[str, Any], path: str = "", user: Optional[Dict[str, Any]] = None,
                 plugins: Optional[Dict[str, Any]] = None, source: str = "config"):
        self._data, self._path = data, path
        self._user = data if user is None else user  # what is_user_set answers from
        self._plugins = plugins
        self.source = source  # the header of its errors, as train's config has it

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "source":
            raise AttributeError(name)
        path = f"{self._path}.{name}" if self._path else name
        if path == "plugins":
            if self._plugins is not None:
                return self._plugins
            return {n: SimpleNamespace(enabled=bool((v or {}).get("enabled", False)), options=(v or {}).get("options") or {})
                    for n, v in (self._data.get("plugins") or {}).items()}
        node: Any = self._data
        for part in path.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if isinstance(node, dict) or (node is _MISSING and path in self._MEGATRON):
            return ConfigView(self._data, path, self._user, self._plugins, self.source)
        if node is not _MISSING:
            return node
        if path.split(".")[0] in self._MEGATRON:
            return None
        return _default_at(path)

    def is_user_set(self, path: str) -> Optional[str]:
        node: Any = self._user
        for part in path.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        return "the config or command line" if node is not _MISSING else None


_MISSING = object()


def _hooks_of(target: Any) -> List[str]:
    from plugtron.plugin_manager import hook_names

    return [h for h in hook_names() if inspect.isroutine(getattr(target, h, None))]


def merged_data(config_path: Optional[str], overrides: Iterable[str]) -> Dict[str, Any]:
    """The YAML file merged with the overrides, read with ``train``'s loader (same limits and errors)."""
    from plugtron.config.loader import load_data

    return load_data(config_path, overrides)


def _lookup_section(sections: Any, path: str) -> Any:
    node: Any = sections
    for part in path.split("."):
        node = getattr(node, part, None)
    return node


def describe_plugins(config_path: Optional[str] = None, overrides: Iterable[str] = (),
                     recipe: str = "tiny") -> Tuple[List[Dict[str, Any]], Optional[Exception]]:
    """One row per installed plugin, and the error ``train`` would raise for the enabled ones
    (``None`` if they pass the same static checks)."""
    from plugtron.config import builtin_toggles
    from plugtron.config.loader import merge_sources
    from plugtron.plugin_checks import check_plugins, distribution_label
    from plugtron.plugin_manager import blocked_names, discover
    from plugtron.recipes.registry import plain_data

    from plugtron.config.torch_free import structure_sections

    user = merged_data(config_path, overrides)
    # recipe < YAML < overrides, as train merges them (the recipe's torch-free sections: no Megatron)
    data = merge_sources(plain_data(recipe), user)
    # Read exactly as `train` reads it (same converter and rule table), minus the torch sections:
    # a value train rejects (train.manual_gc=no) is this command's error too.
    source = " + ".join([f"recipe {recipe!r}"] + ([str(config_path)] if config_path else [])
                        + (["command line"] if overrides else []))
    sections = structure_sections(data, source)
    toggles = {name: path for path, name in builtin_toggles()}
    third_party = data.get("plugins") or {}
    blocked = set(blocked_names())
    available = discover()
    rows = []
    for name, ep in sorted(available.items()):
        try:
            target = ep.load()
            hooks = _hooks_of(target)
            doc = own_doc(target)
        except Exception as exc:  # listing must survive a broken plugin
            target, doc = None, ""
            hooks = [f"<import failed: {type(exc).__name__}: {exc}>"]
        if name in toggles:
            enabled, toggle = bool(_lookup_section(sections, toggles[name])), toggles[name]
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
            "target": target,
            "doc": doc,
            "fields": _core_fields(name, toggles[name], sections) if name in toggles else [],
        })
    try:
        check_plugins(ConfigView(data, user=user, plugins=sections.plugins, source=source), available)
        error = None
    except PlugtronError as exc:
        error = exc
    return rows, error


def own_doc(target: Any) -> str:
    """The plugin's own docstring, else its module's; never one inherited from a base class
    (``inspect.getdoc`` would give e.g. ``abc.ABC``'s)."""
    doc = target.__dict__.get("__doc__") if inspect.isclass(target) else getattr(target, "__doc__", None)
    if not doc:
        module = inspect.getmodule(target)
        doc = module.__doc__ if module is not None else None
    return inspect.cleandoc(doc) if doc else ""


def _core_fields(name: str, toggle: str, sections: Any) -> List[Tuple[str, str, str, str]]:
    """``(path, type, default, current value)`` of the core fields that configure built-in ``name``."""
    from plugtron.config.builtin_fields import describe, fields_of

    rows = []
    for path in fields_of(name, toggle):
        kind, default = describe(path)
        node: Any = sections
        for part in path.split("."):
            node = _MISSING if node is None or node is _MISSING else getattr(node, part, _MISSING)
        if node is _MISSING:
            now = f"(the {path.split('.')[0]} section is absent)"
        elif attrs.has(type(node)):
            now = "present"
        else:
            now = repr(node)
        rows.append((path, kind, default, now))
    return rows


def _type_name(t: Any) -> str:
    return t.__name__ if isinstance(t, type) else str(t).replace("typing.", "")


def settings_rows(target: Any) -> List[Tuple[str, str, str, str]]:
    """``(name, type, default, help)`` for each field of the plugin's ``Settings`` (help from
    ``attrs.field(metadata={"help": ...})``)."""
    settings = getattr(target, "Settings", None)
    if settings is None or not attrs.has(settings):
        return []
    rows = []
    for f in attrs.fields(settings):
        default = f.default.factory() if isinstance(f.default, attrs.Factory) else f.default
        shown = "(required)" if default is attrs.NOTHING else repr(default)
        rows.append((f.name, _type_name(f.type), shown, str(f.metadata.get("help", ""))))
    return rows


def show_plugin(name: str, config_path: Optional[str] = None, overrides: Iterable[str] = (), recipe: str = "tiny") -> str:
    """The text of ``plugtron plugins show NAME``."""
    import difflib

    from plugtron.errors import PluginError

    rows, error = describe_plugins(config_path, overrides, recipe)
    by_name = {r["name"]: r for r in rows}
    if name not in by_name:
        near = difflib.get_close_matches(name, list(by_name), n=1)
        raise PluginError(f"plugin {name!r} is not installed" + (f" (did you mean {near[0]!r}?)" if near else "")
                          + "; installed: " + (", ".join(by_name) or "none"))
    r = by_name[name]
    state = "blocked (PLUGTRON_BLOCK_PLUGINS)" if r["blocked"] else ("yes" if r["enabled"] else "no")
    lines = [f"{name}  ({r['source']})", ""]
    lines += ["  " + ln for ln in (r["doc"] or "(no docstring)").splitlines()] + [""]
    lines.append(f"enabled by:       {r['toggle']}" + ("" if r["toggle"].startswith("plugins.") else f"  (or plugins.{name}.enabled)"))
    lines.append(f"enabled now:      {state}")
    lines.append(f"hooks:            {', '.join(r['hooks']) or 'none'}")
    lines.append(f"config check:     {'yes (config_problems)' if hasattr(r['target'], 'config_problems') else 'no'}")
    opts = settings_rows(r["target"])
    if r["fields"]:
        lines.append("configured by these core fields (path: type = default  now: value):")
        width = max(len(f"{p}: {t} = {d}") for p, t, d, _ in r["fields"])
        lines += [f"  {f'{p}: {t} = {d}'.ljust(width)}  now: {v}" for p, t, d, v in r["fields"]]
    if not opts and r["fields"]:
        lines.append("options:          none (a built-in: set the core fields above)")
    elif not opts:
        lines.append("options:          none (the plugin declares no Settings)")
    else:
        lines.append(f"options (plugins.{name}.options.KEY=VALUE):")
        given = ((merged_data(config_path, overrides).get("plugins") or {}).get(name) or {}).get("options") or {}
        opts = [(n, t, f"{given[n]!r} (configured; default {d})" if n in given else d, h) for n, t, d, h in opts]
        width = max(len(f"{n}: {t} = {d}") for n, t, d, _ in opts)
        lines += [f"  {f'{n}: {t} = {d}'.ljust(width)}  {h}".rstrip() for n, t, d, h in opts]
    if error is not None and r["enabled"]:
        lines += ["", f"problems with this config: {error}"]
    return "\n".join(lines) + "\n"


__all__ = ["ConfigView", "describe_plugins", "show_plugin", "PlugtronError"]
