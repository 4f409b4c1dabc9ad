"""What ``plugtron plugins new --kind K`` writes: one row per kind (entry-point group, the target
the entry point names, the module, its test, the README's usage) and the files every kind shares.

Templates use ``string.Template``: ``$name`` (entry-point name), ``$module`` (``plugtron_NAME``),
``$dist`` (``plugtron-NAME``), ``$cls`` (NAME in CamelCase), ``$group``; ``$$`` is a literal ``$``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from plugtron.scaffold import catalog_kinds, plugin_kind
from plugtron.scaffold.package import Package, ScaffoldError, check_name, write_package


@dataclass(frozen=True)
class Kind:
    group: str  # the entry-point group plugtron reads
    target: str  # what the entry point names, as a template ("$module:$cls")
    summary: str  # pyproject description and README's first line
    module: str  # src/$module/__init__.py
    test: str  # tests/test_$name.py
    usage: str  # README: how to use it once installed (bash lines)
    extra: Dict[str, str] = field(default_factory=dict)  # more files of the module's package: name -> template


KINDS: Dict[str, Kind] = {
    "plugin": Kind("plugtron.plugins", "$module:$cls", "a plugtron plugin (hooks into the training loop)",
                   plugin_kind.MODULE, plugin_kind.TEST, plugin_kind.USAGE),
    "provider": Kind("plugtron.providers", "$module:$cls", "a plugtron model provider (a model family and its sizes)",
                     catalog_kinds.PROVIDER_MODULE, catalog_kinds.PROVIDER_TEST, catalog_kinds.PROVIDER_USAGE),
    "optimizer": Kind("plugtron.optimizers", "$module:$cls", "a plugtron optimizer",
                      catalog_kinds.OPTIMIZER_MODULE, catalog_kinds.OPTIMIZER_TEST, catalog_kinds.OPTIMIZER_USAGE,
                      {"torch_optimizer.py": catalog_kinds.TORCH_OPTIMIZER}),
    "data_format": Kind("plugtron.data_formats", "$module:$cls", "a plugtron data format (JSONL records -> examples)",
                        catalog_kinds.DATA_FORMAT_MODULE, catalog_kinds.DATA_FORMAT_TEST, catalog_kinds.DATA_FORMAT_USAGE),
    "command": Kind("plugtron.commands", "$module:add_parser", "a plugtron command (plugtron $name ...)",
                    catalog_kinds.COMMAND_MODULE, catalog_kinds.COMMAND_TEST, catalog_kinds.COMMAND_USAGE),
}

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "$summary"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["plugtron>=0.1", "attrs>=23.1"]

[project.optional-dependencies]
test = ["pytest>=8"]

# How plugtron finds it: the name on the left is the name a config or the command line picks.
[project.entry-points."$group"]
$name = "$target"

# The plugtron plugin API this package is written for (plugtron.PLUGIN_API), checked before use.
[project.entry-points."plugtron.api"]
$dist = "$module:PLUGTRON_API"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
filterwarnings = ["ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning"]
"""

README = """\
# $dist

`$name`: $summary.

Written by `plugtron plugins new $name --kind $kind`; `pyproject.toml` registers it in the entry-point
group `$group`. From this directory:

```bash
pip install -e ".[test]"
$usage
python -m pytest -q
```

plugtron's docs/plugins.md is the author's guide (hooks, options, `plugtron.testing` for tests).
"""


def render_package(name: str, kind: str) -> Package:
    """The files of a ``kind`` package called ``name`` (not checked here; see ``check_name``)."""
    row = KINDS[kind]
    package = Package(name=name, kind=kind)
    common = {"group": row.group, "summary": package.render(row.summary)}
    common["target"] = package.render(row.target)
    usage = package.render(row.usage.strip("\n"))
    package.files = {
        "pyproject.toml": package.render(PYPROJECT, **common),
        "README.md": package.render(README, usage=usage, **common),
        f"src/{package.module}/__init__.py": package.render(row.module, **common),
        f"tests/test_{name}.py": package.render(row.test, **common),
        **{f"src/{package.module}/{file}": package.render(text, **common) for file, text in row.extra.items()},
    }
    return package


def new_package(name: str, kind: str = "plugin", dest: Optional[str] = None) -> str:
    """Check ``name``, render the ``kind``'s skeleton and write it to ``dest`` (default
    ``./plugtron-NAME``); returns the directory written. Lives here, beside ``KINDS``, so that
    ``package`` (names, checks, the write) needs nothing from this module."""
    if kind not in KINDS:
        raise ScaffoldError(f"--kind {kind!r}: expected one of {', '.join(KINDS)}")
    check_name(name, KINDS[kind].group)
    package = render_package(name, kind)
    return write_package(package, dest or package.dist)
