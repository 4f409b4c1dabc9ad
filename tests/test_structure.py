"""Structure rules the code base keeps: no module takes another module's private names.

A ``_name`` is private to the module that defines it; a ``_module`` is private to its package.
What two modules share is public and lives where it belongs. Tests are exempt: they may probe
their subject's internals.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# source folder -> the package it is installed as (pyproject's package-dir)
PACKAGES = {"core": "plugtron", "plugins": "plugtron.plugins", "providers": "plugtron.providers"}
CHECKED = ("core", "plugins", "providers", "benchmarks")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _source(dotted: str):
    """The file of module or package ``dotted`` in this tree, or None (not a plugtron module)."""
    for folder, pkg in sorted(PACKAGES.items(), key=lambda kv: -len(kv[1])):
        if dotted == pkg or dotted.startswith(pkg + "."):
            base = ROOT.joinpath(folder, *dotted[len(pkg):].split(".")[1:])
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
            return None
    return None


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return ".".join([PACKAGES.get(rel.parts[0], rel.parts[0]), *rel.parts[1:-1]])


def violations(path: Path, source: str = None):
    """``(line, name)`` for each private name ``path`` takes from another module: ``from m import
    _x`` or ``m._x`` on an imported plugtron module ``m``; and each private module (``pkg._m``)
    imported from outside ``pkg``."""
    my_package = _package_of(path)
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    found, modules = [], {}

    def private_module_outside(dotted: str) -> bool:
        parts = dotted.split(".")
        for i, part in enumerate(parts):
            if _private(part):
                owner = ".".join(parts[:i])
                if not (my_package == owner or my_package.startswith(owner + ".")):
                    return True
        return False

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("plugtron"):
            if private_module_outside(node.module):
                found.append((node.lineno, node.module))
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if _source(full) is not None:  # a module: its private attributes are checked below
                    modules[alias.asname or alias.name] = full
                    if private_module_outside(full):
                        found.append((node.lineno, full))
                elif _private(alias.name) and _source(node.module) != path:
                    found.append((node.lineno, full))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("plugtron"):
                    if private_module_outside(alias.name):
                        found.append((node.lineno, alias.name))
                    if alias.asname:
                        modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                and node.value.id in modules and _source(modules[node.value.id]) != path):
            found.append((node.lineno, f"{modules[node.value.id]}.{node.attr}"))
    return sorted(set(found))


def test_no_private_names_taken_from_other_modules():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {name}"
                 for folder in CHECKED for path in sorted((ROOT / folder).rglob("*.py"))
                 for line, name in violations(path)]
    assert not offenders, "private names used outside their module (make them public where they belong):\n" + "\n".join(offenders)


def test_the_check_sees_each_kind_of_reach():
    """The rule above must be able to fail: a module with each kind of reach, and allowed uses."""
    source = ("from plugtron.training.step import _hidden\n"
              "from plugtron.checkpointing import manager\n"
              "x = manager._helper\n"
              "from plugtron.config._fields import y\n"
              "from plugtron.training.step import loss_func\n"
              "from plugtron.training.trainer import _private_here\n")
    where = ROOT / "core" / "training" / "trainer.py"  # taking its own private names is fine
    assert violations(where, source) == [(1, "plugtron.training.step._hidden"),
                                         (3, "plugtron.checkpointing.manager._helper"),
                                         (4, "plugtron.config._fields")]
    assert violations(ROOT / "core" / "config" / "container.py", "from plugtron.config._fields import y\n") == []
