"""Discover, enable, validate and call plugins.

Plugins are found through the entry-point group ``plugtron.plugins`` - plugtron's built-ins are
registered in its own pyproject.toml exactly as a third-party package registers its own. Only the
plugins the config enables are imported. Enabled means: the built-in's toggle field is truthy
(``train.manual_gc``; see ``plugtron.config.builtin_toggles``) or ``plugins.<name>.enabled`` is true.

``PLUGTRON_BLOCK_PLUGINS=a,b`` blocks plugins by name (an operator's kill switch): a config that
enables a blocked plugin is an error, never a silent skip.
"""

from __future__ import annotations

import inspect
from importlib import metadata
from typing import Any, Dict, Iterable, List, Optional

from plugtron.errors import PluginError, PlugtronError
from plugtron.hook_calls import Hooks
from plugtron.plugin_checks import (  # noqa: F401 (blocked_names, enabled_names, BLOCK_ENV: re-exported)
    BLOCK_ENV, HOOK_NAMES, blocked_names, check_plugins, distribution_label, enabled_names, new_pm, register_checked,
)

GROUP = "plugtron.plugins"


def hook_names() -> List[str]:
    return sorted(HOOK_NAMES)


def discover(entry_points: Optional[Iterable[metadata.EntryPoint]] = None) -> Dict[str, metadata.EntryPoint]:
    """name -> entry point, without importing any plugin. By default the ``plugin`` kind of
    ``plugtron.registry`` (a name two packages register is an error when it is enabled); a given
    list (tests, embedding code) with a name registered twice is an error at once."""
    if entry_points is None:
        from plugtron import registry

        return {name: found.ep for name, found in registry.entries("plugin").items()}
    found: Dict[str, metadata.EntryPoint] = {}
    for ep in entry_points:
        if ep.name in found and found[ep.name].value != ep.value:
            raise PluginError(
                f"plugin {ep.name!r} is registered twice: by {distribution_label(found[ep.name])} ({found[ep.name].value}) "
                f"and by {distribution_label(ep)} ({ep.value})"
            )
        found[ep.name] = ep
    return found


class PluginManager:
    """Loads the enabled plugins and exposes them through the typed :class:`Hooks` facade."""

    def __init__(self, entry_points: Optional[Iterable[metadata.EntryPoint]] = None):
        self.available = discover(entry_points)
        self.pm = new_pm()
        self.loaded: Dict[str, Any] = {}
        self._code_owner: Dict[Any, str] = {}
        self.observers: List[Any] = []  # hook-call observers handed to Hooks (plugtron.testing)

    def dist_label(self, name: str) -> str:
        return distribution_label(self.available.get(name))

    def load(self, config: Any) -> Hooks:
        """Check (see ``plugin_checks``), instantiate and register the plugins ``config`` enables."""
        for name in blocked_names():
            self.pm.set_blocked(name)
        for name, target, settings in check_plugins(config, self.available):
            self.register(name, self._instantiate(name, target, settings, config))
        return Hooks(self, self.observers)

    def _instantiate(self, name: str, target: Any, settings: Any, config: Any) -> Any:
        if not inspect.isclass(target):
            return target  # a module (or object) of hook functions
        try:
            params = inspect.signature(target).parameters
            args = [config] if params else []
            if settings is not None:
                args.append(settings)
            return target(*args)
        except PlugtronError:  # the plugin's own complete message (e.g. a GPU-only plugin on a CPU machine)
            raise
        except Exception as exc:
            raise PluginError(f"plugin {name!r} ({self.dist_label(name)}) failed to initialize: {type(exc).__name__}: {exc}") from exc

    def register(self, name: str, plugin: Any) -> None:
        """Register and validate one plugin object (also used by tests and embedding code)."""
        register_checked(self.pm, name, plugin, self.dist_label(name))
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
