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
from importlib import metadata
from typing import Any, Dict, List, Optional, Tuple

import pluggy

from plugtron import hookspecs
from plugtron.errors import ConfigError, PluginError

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


def check_plugins(config: Any, available: Dict[str, metadata.EntryPoint]) -> List[Tuple[str, Any, Any]]:
    """Every static check for the plugins ``config`` enables; all problems reported at once.

    Returns ``[(name, target, settings)]`` in enabling order. ``config.plugins`` maps names to
    objects with ``enabled`` and ``options``."""
    from plugtron.plugin_manager import enabled_names

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
