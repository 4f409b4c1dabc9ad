"""Is an installed package built for this plugtron's plugin API (``plugtron.PLUGIN_API``)?

A package declares the range it supports next to its entries, in its own pyproject.toml::

    [project.entry-points."plugtron.api"]
    my-package = "my_package:PLUGTRON_API"      # my_package/__init__.py: PLUGTRON_API = ">=1,<2"

Why an entry point and not ``Requires-Dist: plugtron>=...``: the plugin API and plugtron's release
number move independently (a release that only fixes the trainer does not touch the API), and pip's
resolver already enforces Requires-Dist at install time; what needs checking at use time is the
API. The declaration is read (importing only the module that holds the string) before any entry of
the package is loaded, so an incompatible package is refused before anything of it runs. A package
that declares nothing is accepted (``registry show`` says so).
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Dict, Optional

from plugtron.errors import PluginError

GROUP = "plugtron.api"


def _dist(ep: metadata.EntryPoint) -> Optional[str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None
    where = getattr(dist, "_path", None)  # each .name parses the METADATA file again: ~1 ms
    if where is None:
        return dist.name
    name = _NAMES.get(str(where))
    if name is None:
        name = _NAMES[str(where)] = dist.name
    return name


_NAMES: Dict[str, str] = {}  # installed distribution's metadata path -> its name


@functools.lru_cache(maxsize=None)
def declared_ranges() -> Dict[str, metadata.EntryPoint]:
    """distribution name -> its ``plugtron.api`` declaration (metadata only)."""
    return {_dist(ep): ep for ep in metadata.entry_points(group=GROUP) if _dist(ep)}


def declared_range(ep: metadata.EntryPoint) -> Optional[str]:
    """The range the package of ``ep`` declares (as written), or None if it declares none."""
    decl = declared_ranges().get(_dist(ep))
    if decl is None:
        return None
    label = f"{_dist(ep)} {ep.dist.version}"
    try:
        value = decl.load()
    except Exception as exc:
        raise PluginError(f"package {label}: its plugtron.api declaration {decl.value} failed to import: "
                          f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(value, str):
        raise PluginError(f"package {label}: plugtron.api {decl.value} is {value!r}; expected a version range "
                          "string such as '>=1,<2'")
    return value


@functools.lru_cache(maxsize=None)
def _checked(dist_name: Optional[str], value: Optional[str], label: str) -> None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import Version

    from plugtron import PLUGIN_API

    if value is None:
        return
    try:
        spec = SpecifierSet(value)
    except InvalidSpecifier:
        raise PluginError(f"package {label}: plugtron.api range {value!r} is not a version range "
                          "(expected e.g. '>=1,<2')") from None
    if Version(PLUGIN_API) not in spec:
        raise PluginError(f"package {label} supports plugtron plugin API {value}, but this plugtron "
                          f"({metadata.version('plugtron')}) has plugin API {PLUGIN_API}; install a version "
                          f"of {dist_name} built for API {PLUGIN_API.split('.')[0]}.x, or uninstall it")


def check_package(ep: metadata.EntryPoint) -> None:
    """Raise ``PluginError`` if the package of ``ep`` declares an API range excluding ``PLUGIN_API``."""
    if _dist(ep) in (None, "plugtron"):
        return
    _checked(_dist(ep), declared_range(ep), f"{_dist(ep)} {ep.dist.version}")
