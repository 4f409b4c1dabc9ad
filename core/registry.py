"""One registry for everything a package can add to plugtron: each kind is an entry-point group.

plugtron's own built-ins are registered in its pyproject.toml exactly as a third-party package
registers its own; there is no other table. Reading a group only reads installed metadata (no
import, no torch); an entry's code is imported when it is used (``load``). A config can only *pick*
a registered name, never name a module, so no config value imports arbitrary code.

Safety: a name two installed packages register is an error naming both (choose with
``PLUGTRON_PREFER=KIND.NAME=PACKAGE`` or uninstall one); a broken entry is one error naming its
package, raised only when that entry is used (listing never imports anything). Compatibility: a
package declares the plugin-API range it supports (``plugtron.api`` group, see ``plugtron.api_check``)
and is refused before anything of it is used when plugtron's ``PLUGIN_API`` is outside it.
"""

from __future__ import annotations

import difflib
import functools
import os
from importlib import metadata
from typing import Any, Dict, List, Optional, Tuple

import attrs

from plugtron.errors import ConfigError, PluginError

PREFER_ENV = "PLUGTRON_PREFER"


@attrs.frozen
class Kind:
    name: str  # as shown and as given to ``registry list KIND``
    group: str  # the entry-point group
    picked_by: str  # where a config or command line names an entry of this kind
    holds: str  # what an entry's object is (for the author's guide and ``registry show``)


# The kinds, in listing order. One table: adding a kind is one row here plus its use site.
KINDS: Tuple[Kind, ...] = (
    Kind("plugin", "plugtron.plugins", "plugins.NAME.enabled (or a built-in's toggle)", "a hook class or module"),
    Kind("provider", "plugtron.providers", "model.provider", "a model provider class (a size preset is its own name)"),
    Kind("hf", "plugtron.hf", "config.json architectures (convert import-hf / export-hf)",
         "a plugtron.providers.hf.configs.Family (config translation + weight mapping)"),
    Kind("recipe", "plugtron.recipes", "--recipe", "a function returning a ConfigContainer"),
    Kind("data_format", "plugtron.data_formats", "dataset.data_format", "an SFT format (encode one JSONL record) or a pretraining format (pretraining = True: build the splits)"),
    Kind("tokenizer", "plugtron.tokenizers", "tokenizer.tokenizer_type", "a function TokenizerConfig -> tokenizer"),
    Kind("optimizer", "plugtron.optimizers", "optimizer.optimizer", "an optimizer (Megatron's own, or a torch optimizer)"),
    Kind("command", "plugtron.commands", "plugtron NAME ...", "add_parser(subparsers): adds `plugtron NAME`"),
)
BY_KIND: Dict[str, Kind] = {k.name: k for k in KINDS}


@attrs.frozen
class Entry:
    """One registered name: its entry point, and every other package's entry for the same name."""

    kind: str
    name: str
    ep: metadata.EntryPoint
    rivals: Tuple[metadata.EntryPoint, ...] = ()

    @property
    def package(self) -> str:
        return package_of(self.ep)

    @property
    def module(self) -> str:
        return self.ep.value.split(":")[0].strip()

    @property
    def attr(self) -> Optional[str]:
        return self.ep.value.split(":")[1].strip() if ":" in self.ep.value else None


def package_of(ep: Optional[metadata.EntryPoint]) -> str:
    """``"name version"`` of the distribution that registered ``ep``."""
    dist = getattr(ep, "dist", None)
    if ep is None:
        return "registered in code"
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "?"


def _preferred() -> Dict[str, str]:
    """``PLUGTRON_PREFER=provider.gpt=my-pkg,recipe.tiny=plugtron`` -> {"provider.gpt": "my-pkg", ...}."""
    out = {}
    for item in os.environ.get(PREFER_ENV, "").split(","):
        if "=" in item:
            key, dist = item.split("=", 1)
            out[key.strip()] = dist.strip()
    return out


@functools.lru_cache(maxsize=None)
def entries(kind: str) -> Dict[str, Entry]:
    """``name -> Entry`` of ``kind``, in registration order, from installed metadata only."""
    group = BY_KIND[kind].group
    by_name: Dict[str, List[metadata.EntryPoint]] = {}
    for ep in metadata.entry_points(group=group):
        if getattr(ep, "group", group) not in (group, None):
            continue  # an entry point of another group (a caller's own list)
        same = by_name.setdefault(ep.name, [])
        if not any(e.value == ep.value and _dist_name(e) == _dist_name(ep) for e in same):
            same.append(ep)
    prefer = _preferred()
    out = {}
    for name, eps in by_name.items():
        choice = [e for e in eps if _dist_name(e) == prefer.get(f"{kind}.{name}")]
        if choice:
            eps = choice
        out[name] = Entry(kind, name, eps[0], tuple(eps[1:]))
    return out


def refresh() -> None:
    """Forget what was read (after installing a package in-process; tests)."""
    entries.cache_clear()
    from plugtron import api_check

    api_check.declared_ranges.cache_clear()


def names(kind: str) -> List[str]:
    return list(entries(kind))


def suggestion(name: str, kind: str) -> str:
    """`` (did you mean 'x'?)`` from this kind's names, else a note that ``name`` is another kind."""
    near = difflib.get_close_matches(str(name), names(kind), n=1, cutoff=0.6)
    if near:
        return f" (did you mean {near[0]!r}?)"
    for other in KINDS:
        if other.name != kind and name in entries(other.name):
            return f" ('{name}' is a registered {other.name}, not a {kind})"
    every = {n: k.name for k in KINDS if k.name != kind for n in entries(k.name)}
    near = difflib.get_close_matches(str(name), list(every), n=1, cutoff=0.8)  # across kinds: only near-certain ones
    return f" (did you mean the {every[near[0]]} {near[0]!r}?)" if near else ""


def unknown(kind: str, name: Any, where: str) -> ConfigError:
    known = names(kind)
    return ConfigError([f"{where}: unknown {kind} {name!r}{suggestion(str(name), kind)}; registered: "
                        f"{', '.join(known) or 'none'} (plugtron registry list {kind})"])


def entry(kind: str, name: Any, where: Optional[str] = None) -> Entry:
    """The usable entry ``name`` of ``kind``: a ``ConfigError`` if unknown, a ``PluginError`` if two
    packages register it or its package does not support this plugtron's plugin API."""
    table = entries(kind)
    if not isinstance(name, str) or name not in table:
        raise unknown(kind, name, where or BY_KIND[kind].picked_by)
    found = table[name]
    if found.rivals:
        pkgs = [found.ep] + list(found.rivals)
        listed = " and ".join(f"{package_of(e)} ({e.value})" for e in pkgs)
        raise PluginError(f"{kind} {name!r} is registered by more than one package: {listed}; uninstall one, "
                          f"or choose with {PREFER_ENV}={kind}.{name}=<package name> (e.g. {_dist_name(pkgs[0])})")
    from plugtron.api_check import check_package

    check_package(found.ep)
    return found


def load(kind: str, name: Any, where: Optional[str] = None) -> Any:
    """The object registered as ``name`` of ``kind`` (imported now; errors as ``entry``, plus one
    naming the package if its import fails)."""
    found = entry(kind, name, where)
    return load_ep(kind, name, found.ep)


def load_ep(kind: str, name: str, ep: metadata.EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as exc:
        raise PluginError(f"{kind} {name!r} ({package_of(ep)}) failed to import {ep.value}: "
                          f"{type(exc).__name__}: {exc}") from exc


def name_of(kind: str, obj: Any) -> Optional[str]:
    """The name ``obj`` (a class or function) is registered under in ``kind``, from the entry
    points' ``module:qualname`` text (nothing imported), or ``None``."""
    target = f"{obj.__module__}:{obj.__qualname__}"
    for name, found in entries(kind).items():
        if found.ep.value.replace(" ", "") == target:
            return name
    return None
