"""What each plugin's ``configure_model`` changed on the model provider (and on the DDP and optimizer
configs, which plugins such as ``comm_overlap`` adjust there too), and the conflicts in it.

Two plugins setting one field to different values, or a plugin changing a field the user set
explicitly (YAML or command line), is an error naming the plugins, the field, the values and where
the user set it - never a silent "last one wins". A plugin that only fills fields the user left
alone is fine; ``config.is_user_set("model.x")`` lets it check first.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Dict, List, Tuple

from plugtron.errors import PluginError


def _fields(provider: Any) -> Dict[str, Any]:
    if dataclasses.is_dataclass(provider):
        return {f.name: getattr(provider, f.name, None) for f in dataclasses.fields(provider)}
    return dict(vars(provider))


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # arrays, tensors: an ambiguous truth value means "not the same object"
        return False


class ModelChanges:
    """Snapshot the provider around each plugin's ``configure_model`` (cost: one shallow copy of
    its fields per plugin that implements the hook, once per run)."""

    def __init__(self, config: Any, provider: Any, section: str = "model"):
        self.config, self.provider, self.section = config, provider, section
        self.original = _fields(provider)
        self.changes: Dict[str, List[Tuple[str, Any]]] = {}  # field -> [(plugin, new value)]

    @contextlib.contextmanager
    def attributed_to(self, plugin: str):
        before = _fields(self.provider)
        yield
        for key, value in _fields(self.provider).items():
            if key not in before or not _same(before[key], value):
                self.changes.setdefault(key, []).append((plugin, value))

    def problems(self) -> List[str]:
        problems = []
        is_user_set = getattr(self.config, "is_user_set", lambda path: None)
        for key, changes in self.changes.items():
            path = f"{self.section}.{key}"
            distinct = []
            for plugin, value in changes:
                if not any(_same(value, v) for _, v in distinct):
                    distinct.append((plugin, value))
            if len(distinct) > 1:
                (p1, v1), (p2, v2) = distinct[0], distinct[1]
                problems.append(f"{path}: plugin {p1!r} sets it to {v1!r} and plugin {p2!r} to {v2!r}; "
                                "two plugins may not set one field to different values (disable one of them)")
            source = is_user_set(path)
            if source:
                plugin, value = changes[0]
                problems.append(f"{path}: plugin {plugin!r} changes it from {self.original.get(key)!r} to {value!r}, "
                                f"but it was set to {self.original.get(key)!r} in {source}; remove one of the two "
                                f"(a plugin should leave fields the user set alone: config.is_user_set({path!r}))")
        return problems


#: The config sections a ``configure_model`` may change besides the provider, tracked the same way.
TRACKED_SECTIONS = ("ddp", "optimizer")


def tracked(config: Any, provider: Any) -> List[ModelChanges]:
    """One tracker for the provider and one for each of ``TRACKED_SECTIONS`` the config has."""
    return [ModelChanges(config, provider)] + [ModelChanges(config, getattr(config, s), s)
                                               for s in TRACKED_SECTIONS if getattr(config, s, None) is not None]


def check_all(trackers: List[ModelChanges]) -> None:
    problems = [p for t in trackers for p in t.problems()]
    if problems:
        raise PluginError("configure_model: conflicting changes to the config\n  " + "\n  ".join(problems))
