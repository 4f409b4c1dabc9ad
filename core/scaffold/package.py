"""Names, checks and the atomic write behind ``plugtron plugins new`` (torch-free).

One NAME gives every other name, so a package is consistent by construction: the entry-point name
(what a config picks) is NAME, the Python module is ``plugtron_NAME`` (prefixed, so a short NAME
cannot shadow a module such as ``json``), the distribution ``plugtron-NAME`` and the class NAME in
CamelCase.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from importlib.util import find_spec
from string import Template
from typing import Dict

from plugtron.errors import PlugtronError

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


class ScaffoldError(PlugtronError):
    """A package cannot be written: a bad name, a taken name, or an existing directory."""


@dataclass
class Package:
    name: str  # the entry-point name
    kind: str
    files: Dict[str, str] = field(default_factory=dict)  # relative path -> text

    @property
    def module(self) -> str:
        return f"plugtron_{self.name}"

    @property
    def dist(self) -> str:
        return "plugtron-" + self.name.replace("_", "-")

    @property
    def cls(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_") if part) or "Plugin"

    def substitutions(self, **extra: str) -> Dict[str, str]:
        return {"name": self.name, "kind": self.kind, "module": self.module, "dist": self.dist, "cls": self.cls, **extra}

    def render(self, template: str, **extra: str) -> str:
        """``$name``, ``$module``, ``$dist``, ``$cls``, ``$kind`` (and ``extra``) filled in; a ``$``
        the template does not define is an error, never left in the output."""
        return Template(template).substitute(self.substitutions(**extra))


def check_name(name: str, group: str, what: str = "NAME") -> None:
    """One clear error for a NAME plugtron could not register, or one already taken."""
    if not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(f"{what} {name!r}: expected a lowercase Python identifier such as 'my_plugin' "
                            "(letters, digits and '_', starting with a letter); it becomes the entry-point "
                            f"name and the module plugtron_<{what}>")
    taken = [ep for ep in metadata.entry_points(group=group) if ep.name == name]
    if taken:
        dist = getattr(taken[0], "dist", None)
        owner = f"{dist.name} {dist.version}" if dist is not None else taken[0].value
        raise ScaffoldError(f"{what} {name!r}: already registered in entry-point group {group!r} by {owner}; "
                            "choose another name")
    if find_spec(f"plugtron_{name}") is not None:
        raise ScaffoldError(f"{what} {name!r}: a module plugtron_{name} is already importable here; choose another name")


def write_package(package: Package, dest: str) -> str:
    """Write ``package.files`` under ``dest``, which must not exist. The files go into a fresh
    directory next to it that is renamed into place at the end: ``dest`` appears complete or not at
    all, and nothing that exists is touched."""
    dest = os.path.abspath(dest)
    if os.path.lexists(dest):
        raise ScaffoldError(f"{dest}: already exists; nothing was written (choose another --output or remove it)")
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        raise ScaffoldError(f"{parent}: no such directory; nothing was written")
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.", dir=parent)
    try:
        for rel, text in package.files.items():
            path = os.path.join(staging, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        if os.path.lexists(dest):  # appeared meanwhile: still never overwrite
            raise ScaffoldError(f"{dest}: already exists; nothing was written")
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest

