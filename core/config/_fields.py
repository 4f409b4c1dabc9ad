"""Small helpers shared by the config sections (torch-free)."""

from __future__ import annotations

from typing import Any, Iterator, Tuple

import attrs

PLUGIN_KEY = "plugin"


def toggle(plugin: str, *, default: Any, **kwargs: Any) -> Any:
    """An attrs field that is also the on/off switch of the built-in plugin ``plugin``.

    The plugin is enabled exactly when the field's value is truthy (``True``, a positive interval,
    a non-empty section).
    """
    return attrs.field(default=default, metadata={PLUGIN_KEY: plugin}, **kwargs)


def iter_toggles(cls: type, prefix: str = "") -> Iterator[Tuple[str, str]]:
    """Yield ``(dotted.path, plugin_name)`` for every toggle field in ``cls`` (recursively into
    attrs-typed fields whose type is a resolved class)."""
    for f in attrs.fields(cls):
        path = f"{prefix}{f.name}"
        if PLUGIN_KEY in f.metadata:
            yield path, f.metadata[PLUGIN_KEY]
        elif isinstance(f.type, type) and attrs.has(f.type):
            yield from iter_toggles(f.type, prefix=path + ".")
