"""The static plugin checks that ``train``, ``config show`` and ``plugins list`` share, so the three
commands accept and refuse the same configs with the same messages.

For the plugins a config enables: installed and not blocked; importable; hook names, arguments and
markers valid (checked on the class, nothing instantiated); options structured by the plugin's
``Settings`` (options for a plugin without ``Settings``, or for one not enabled, are errors); and the
plugin's own static config check, ``config_problems(config) -> list of "path: message"`` (a
classmethod or staticmethod; ``config_problems(config, settings)`` also gets the plugin's validated
``Settings`` instance), so a bad value fails before anything is built.
"""

from __future__ import annotations

import difflib
import inspect
import os
from importlib import metadata
from typing import Any, Dict, List, Optional, Tuple

import pluggy

from plugtron import hookspecs
from plugtron.errors import ConfigError, PluginError

BLOCK_ENV = "PLUGTRON_BLOCK_PLUGINS"
HOOK_NAMES = frozenset(
    n for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, hookspecs.PROJECT + "_spec")
)


def distribution_label(ep: Optional[metadata.EntryPoint]) -> str:
    dist = getattr(ep, "dist", None)
    if ep is None:
        return "registered in code"
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


class HookPM(pluggy.PluginManager):
    """Undecorated methods named like a hook are hooks too (``@hookimpl`` is optional)."""

    def parse_hookimpl_opts(self, plugin, name):
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name in HOOK_NAMES and inspect.isroutine(getattr(plugin, name, None)):
            opts = {}
        return opts


def new_pm() -> HookPM:
    pm = HookPM(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def check_names(name: str, obj: Any) -> None:
    """Catch hook-name typos that pluggy cannot see (an undecorated ``on_stepp``)."""
    for attr in dir(obj):
        if attr.startswith(("on_", "configure_", "collect_")) and attr not in HOOK_NAMES:
            if inspect.isroutine(getattr(obj, attr, None)):
                near = difflib.get_close_matches(attr, HOOK_NAMES, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise PluginError(f"plugin {name!r}: {attr!r} is not a plugtron hook{hint}; hooks: {', '.join(sorted(HOOK_NAMES))}")


def register_checked(pm: pluggy.PluginManager, name: str, obj: Any, label: str) -> None:
    """Register ``obj`` (a plugin instance, class or module) with every check; unregister on failure."""
    from plugtron.hook_calls import PER_PLUGIN_HOOKS

    check_names(name, obj)
    try:
        pm.register(obj, name=name)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        if pm.is_registered(obj):
            pm.unregister(obj)
        raise PluginError(f"plugin {name!r} ({label}) does not match the hook specs: {exc}") from None
    for caller in pm.get_hookcallers(obj) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is obj and caller.name in PER_PLUGIN_HOOKS and (impl.wrapper or impl.hookwrapper):
                pm.unregister(obj)
                raise PluginError(
                    f"plugin {name!r} ({label}): {caller.name} may not be a wrapper (wrapper=True/hookwrapper=True): "
                    f"plugtron calls each {caller.name} on its own ({'per-plugin results' if caller.name != 'on_exception' else 'one failure must not stop the others'}); "
                    "use tryfirst=True or trylast=True to order it"
                )


def load_target(name: str, ep: metadata.EntryPoint) -> Any:
    """The plugin's class or module; errors name the package (two packages registering ``name``, a
    plugin API the package does not support, a failing import)."""
    from plugtron import registry
    from plugtron.api_check import check_package

    registered = registry.entries("plugin").get(name)
    if registered is not None and registered.ep == ep:
        registry.entry("plugin", name)  # rivals and API range
    else:
        check_package(ep)
    try:
        return ep.load()
    except Exception as exc:
        raise PluginError(f"plugin {name!r} ({distribution_label(ep)}) failed to import {ep.value}: {type(exc).__name__}: {exc}") from exc


def structure_settings(name: str, target: Any, options: Dict[str, Any]) -> Any:
    """The plugin's ``Settings`` built from its options (strict); options without ``Settings`` are an error."""
    if not hasattr(target, "Settings"):
        if options:
            raise ConfigError([f"plugins.{name}.options: plugin {name!r} declares no Settings, so it takes no "
                               f"options; got {', '.join(map(str, options))}"])
        return None
    from plugtron.config.converter import collect_problems, converter

    try:
        return converter().structure(options, target.Settings)
    except ConfigError as exc:
        raise ConfigError([f"plugins.{name}.options.{p}" for p in exc.problems]) from None
    except Exception as exc:  # cattrs groups: each problem named by its full path
        raise ConfigError(collect_problems(exc, f"plugins.{name}.options")) from None


def own_config_problems(name: str, target: Any, config: Any, settings: Any = None) -> List[str]:
    """The plugin's ``config_problems(config)`` or ``config_problems(config, settings)`` (``settings``:
    its validated ``Settings`` instance, as its constructor gets it)."""
    check = getattr(target, "config_problems", None)
    if check is None:
        return []
    try:
        takes_settings = "settings" in inspect.signature(check).parameters
    except (TypeError, ValueError):
        takes_settings = False
    try:
        return [str(p) for p in ((check(config, settings) if takes_settings else check(config)) or [])]
    except Exception as exc:
        raise PluginError(f"plugin {name!r}: config_problems raised {type(exc).__name__}: {exc}") from exc


def blocked_names() -> List[str]:
    return [n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()]


def _walk(config: Any, dotted: str) -> Any:
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def enabled_names(config: Any, available: Iterable[str]) -> List[str]:
    """The plugins ``config`` enables, in a stable order (built-ins by toggle order, then
    ``plugins.<name>`` in config order). Unknown or blocked names are errors."""
    from plugtron.config import builtin_toggles

    available = sorted(available)
    names: List[str] = []
    toggled_by = {}
    for path, name in builtin_toggles():
        if _walk(config, path) and name not in names:
            names.append(name)
            toggled_by[name] = path
    for name, settings in config.plugins.items():
        if settings.enabled and name not in names:
            names.append(name)
    problems = []
    for name in names:
        if name not in available and name in toggled_by:
            problems.append(
                f"{toggled_by[name]}: switches on the built-in plugin {name!r}, which this plugtron "
                "installation does not provide (not shipped in this version, or the install is stale: "
                "reinstall plugtron)"
            )
        elif name not in available:
            near = difflib.get_close_matches(name, available, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(
                f"plugin {name!r} is enabled by the config but not installed{hint}; installed: "
                + (", ".join(available) or "none")
            )
    blocked = set(blocked_names())
    problems += [f"plugin {n!r} is enabled by the config but blocked by {BLOCK_ENV}" for n in names if n in blocked]
    if problems:
        raise PluginError("\n".join(problems))
    return names


def check_plugins(config: Any, available: Dict[str, metadata.EntryPoint]) -> List[Tuple[str, Any, Any]]:
    """Every static check for the plugins ``config`` enables; all problems reported at once.

    Returns ``[(name, target, settings)]`` in enabling order. ``config.plugins`` maps names to
    objects with ``enabled`` and ``options``."""
    names = enabled_names(config, available)  # not installed / blocked: raises at once
    plugin_problems: List[str] = []
    config_problems: List[str] = []
    for other, settings in config.plugins.items():
        if other not in names and settings.options:
            config_problems.append(f"plugins.{other}.options: given, but plugin {other!r} is not enabled "
                                   f"(set plugins.{other}.enabled=true, or remove the options)")
    prepared = []
    for name in names:
        try:
            target = load_target(name, available[name])
            if inspect.isclass(target) or inspect.ismodule(target):
                register_checked(new_pm(), name, target, distribution_label(available[name]))
            options = config.plugins[name].options if name in config.plugins else {}
            settings = structure_settings(name, target, options)  # bad options: the plugin's own check is not run
            config_problems += own_config_problems(name, target, config, settings)
        except PluginError as exc:
            plugin_problems.append(str(exc))
            continue
        except ConfigError as exc:
            config_problems += [f"{exc.source}: {p}" if exc.source != "config" else p for p in exc.problems]
            continue
        prepared.append((name, target, settings))
    if plugin_problems:
        raise PluginError("\n".join(plugin_problems + config_problems))
    if config_problems:  # a rule that several plugins share (the profiling window) is reported once
        raise ConfigError(list(dict.fromkeys(config_problems)), source=getattr(config, "source", "config"))
    return prepared
