"""Discover, enable, validate and call plugins.

Plugins are found through the entry-point group ``plugtron.plugins`` - plugtron's built-ins are
registered in its own pyproject.toml exactly as a third-party package registers its own. Only the
plugins the config enables are imported. Enabled means: the built-in's toggle field is truthy
(``train.manual_gc``; see ``plugtron.config.builtin_toggles``) or ``plugins.<name>.enabled`` is true.

``PLUGTRON_BLOCK_PLUGINS=a,b`` blocks plugins by name (an operator's kill switch): a config that
enables a blocked plugin is an error, never a silent skip.
"""

from __future__ import annotations

import difflib
import inspect
import os
from importlib import metadata
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pluggy

from plugtron import hookspecs
from plugtron.errors import PluginError

GROUP = "plugtron.plugins"
BLOCK_ENV = "PLUGTRON_BLOCK_PLUGINS"
_HOOK_NAMES = frozenset(
    n for n, f in vars(hookspecs).items() if callable(f) and hasattr(f, hookspecs.PROJECT + "_spec")
)


def hook_names() -> List[str]:
    return sorted(_HOOK_NAMES)


def discover(entry_points: Optional[Iterable[metadata.EntryPoint]] = None) -> Dict[str, metadata.EntryPoint]:
    """name -> entry point, without importing any plugin. A name registered twice is an error."""
    eps = list(entry_points) if entry_points is not None else list(metadata.entry_points(group=GROUP))
    found: Dict[str, metadata.EntryPoint] = {}
    for ep in eps:
        if ep.name in found and found[ep.name].value != ep.value:
            raise PluginError(
                f"plugin {ep.name!r} is registered twice: by {distribution_label(found[ep.name])} ({found[ep.name].value}) "
                f"and by {distribution_label(ep)} ({ep.value})"
            )
        found[ep.name] = ep
    return found


def distribution_label(ep: metadata.EntryPoint) -> str:
    """Which installed distribution registered ``ep`` (name and version), for messages and listings."""
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


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


class _PM(pluggy.PluginManager):
    """Undecorated methods named like a hook are hooks too (``@hookimpl`` is optional)."""

    def parse_hookimpl_opts(self, plugin, name):
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name in _HOOK_NAMES and inspect.isroutine(getattr(plugin, name, None)):
            opts = {}
        return opts


def _check_names(name: str, obj: Any) -> None:
    """Catch hook-name typos that pluggy cannot see (an undecorated ``on_stepp``)."""
    for attr in dir(obj):
        if attr.startswith(("on_", "configure_")) and attr not in _HOOK_NAMES:
            if inspect.isroutine(getattr(obj, attr, None)):
                near = difflib.get_close_matches(attr, _HOOK_NAMES, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise PluginError(f"plugin {name!r}: {attr!r} is not a plugtron hook{hint}; hooks: {', '.join(hook_names())}")


class PluginManager:
    """Loads the enabled plugins and exposes them through the typed :class:`Hooks` facade."""

    def __init__(self, entry_points: Optional[Iterable[metadata.EntryPoint]] = None):
        self.available = discover(entry_points)
        self.pm = _PM(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.loaded: Dict[str, Any] = {}
        self._code_owner: Dict[Any, str] = {}

    def dist_label(self, name: str) -> str:
        ep = self.available.get(name)
        return distribution_label(ep) if ep is not None else "registered in code"

    def load(self, config: Any) -> "Hooks":
        for name in blocked_names():
            self.pm.set_blocked(name)
        for name in enabled_names(config, self.available):
            self.register(name, self._instantiate(name, config))
        return Hooks(self)

    def _instantiate(self, name: str, config: Any) -> Any:
        ep = self.available[name]
        try:
            target = ep.load()
        except Exception as exc:
            raise PluginError(f"plugin {name!r} ({distribution_label(ep)}) failed to import {ep.value}: {type(exc).__name__}: {exc}") from exc
        if not inspect.isclass(target):
            return target  # a module (or object) of hook functions
        settings = None
        if hasattr(target, "Settings"):
            from plugtron.config.converter import structure

            options = config.plugins[name].options if name in config.plugins else {}
            settings = structure(options, target.Settings, source=f"plugins.{name}.options")
        try:
            params = inspect.signature(target).parameters
            args = [config] if params else []
            if settings is not None:
                args.append(settings)
            return target(*args)
        except Exception as exc:
            raise PluginError(f"plugin {name!r} ({distribution_label(ep)}) failed to initialize: {type(exc).__name__}: {exc}") from exc

    def register(self, name: str, plugin: Any) -> None:
        """Register and validate one plugin object (also used by tests and embedding code)."""
        _check_names(name, plugin)
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise PluginError(f"plugin {name!r} ({self.dist_label(name)}) does not match the hook specs: {exc}") from None
        self.loaded[name] = plugin
        for impl_caller in self.pm.get_hookcallers(plugin) or []:
            for impl in impl_caller.get_hookimpls():
                if impl.plugin is plugin:
                    fn = getattr(impl.function, "__func__", impl.function)
                    self._code_owner[fn.__code__] = name

    def owner_of(self, exc: BaseException) -> Optional[str]:
        """Which plugin's hook implementation raised ``exc`` (from its traceback)."""
        tb = exc.__traceback__
        while tb is not None:
            owner = self._code_owner.get(tb.tb_frame.f_code)
            if owner is not None:
                return owner
            tb = tb.tb_next
        return None


class Hooks:
    """Typed facade over ``pm.hook``: the loop calls these, never ``pm.hook`` directly.

    A hook that raises is re-raised as :class:`PluginError` naming the plugin and its distribution.
    """

    def __init__(self, manager: PluginManager):
        self._m = manager
        self._h = manager.pm.hook

    def _fail(self, hook: str, exc: Exception) -> PluginError:
        name = self._m.owner_of(exc)
        who = f"plugin {name!r} ({self._m.dist_label(name)})" if name else "a plugin"
        return PluginError(f"{who} raised in {hook}: {type(exc).__name__}: {exc}")

    def _call(self, hook: str, **kwargs: Any) -> List[Any]:
        try:
            return getattr(self._h, hook)(**kwargs)
        except PluginError:
            raise
        except Exception as exc:
            raise self._fail(hook, exc) from exc

    def configure_model(self, config, provider) -> None:
        self._call("configure_model", config=config, provider=provider)

    def on_train_start(self, state) -> None:
        self._call("on_train_start", state=state)

    def on_step_start(self, state) -> None:
        self._call("on_step_start", state=state)

    def on_step(self, state, metrics) -> None:
        self._call("on_step", state=state, metrics=metrics)

    def on_log(self, state, log: Dict[str, Any]) -> None:
        self._call("on_log", state=state, log=log)

    def on_eval_start(self, state, split: str) -> None:
        self._call("on_eval_start", state=state, split=split)

    def on_eval(self, state, split: str, metrics: Dict[str, Any]) -> None:
        self._call("on_eval", state=state, split=split, metrics=metrics)

    def on_before_save(self, state) -> None:
        self._call("on_before_save", state=state)

    def on_save(self, state, checkpoint_dir: str) -> Dict[str, Any]:
        """Call each implementation on its own so every result lands in its plugin's slot."""
        return self._per_plugin("on_save", state=state, checkpoint_dir=checkpoint_dir)

    def on_load(self, state, checkpoint_dir: str, plugin_states: Dict[str, Any]) -> None:
        for impl in self._h.on_load.get_hookimpls():
            self._call_impl("on_load", impl, state=state, checkpoint_dir=checkpoint_dir,
                            plugin_state=plugin_states.get(impl.plugin_name))

    def on_train_end(self, state) -> None:
        self._call("on_train_end", state=state)

    def on_exception(self, state, exc: BaseException) -> List[Tuple[str, str]]:
        """Never raises: returns ``(plugin, error)`` pairs for implementations that failed."""
        failures = []
        for impl in self._h.on_exception.get_hookimpls():
            try:
                self._call_impl("on_exception", impl, state=state, exc=exc)
            except PluginError as err:
                failures.append((impl.plugin_name, str(err)))
        return failures

    def _per_plugin(self, hook: str, **kwargs: Any) -> Dict[str, Any]:
        out = {}
        for impl in getattr(self._h, hook).get_hookimpls():
            result = self._call_impl(hook, impl, **kwargs)
            if result is not None:
                out[impl.plugin_name] = result
        return out

    def _call_impl(self, hook: str, impl, **kwargs: Any) -> Any:
        try:
            return impl.function(*[kwargs[a] for a in impl.argnames])
        except Exception as exc:
            raise self._fail(hook, exc) from exc
