"""The plugin package ``plugtron migrate callback`` writes: the migrated module, its entry point,
a test that runs it in a tiny plugtron training, and the report as its README."""

from __future__ import annotations

import re
from typing import Optional

from plugtron.migrate.callback import CallbackMigration
from plugtron.scaffold import Package, check_name
from plugtron.scaffold.kinds import PYPROJECT

GROUP = "plugtron.plugins"

TEST = '''\
"""The migrated plugin in a tiny plugtron training (plugtron.testing): it loads, and its hooks run."""


def test_${name}_runs_in_a_tiny_training(plugtron_run):
    result = plugtron_run(["train.train_iters=4"$options], ["$name"])  # the installed plugin, by name
    assert "$name" in result.plugins
'''

RESUME = '''\
    again = plugtron_run.resume(result, [$options_only], ["$name"])  # on_load gets what on_save returned
    assert "on_load@4" in again.transcript
'''


def default_name(cls_name: str) -> str:
    """``GarbageCollectionCallback`` -> ``garbage_collection``; ``GCCallback`` -> ``gc``."""
    stem = re.sub(r"Callback$", "", cls_name) or cls_name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", stem).lower()


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_report(m: CallbackMigration, name: str) -> str:
    lines = [f"# plugtron migrate callback: {m.filename} ({m.cls_name})", ""]
    lines += [f"The plugtron plugin `{name}` (class `plugtron_{name}:{m.cls_name}`, entry-point group "
              f"`{GROUP}`); a config enables it with `plugins.{name}.enabled: true`."]
    if m.options:
        lines += ["Its options (`plugins.{0}.options.<name>`), from the callback's `__init__`: {1}.".format(
            name, ", ".join(f"`{o}`" for o in m.options))]
    lines += ["", "| Lightning hook | line | plugtron hook | note |", "|---|---|---|---|"]
    for r in sorted(m.rows, key=lambda r: r.line):
        target = f"`{r.plugtron}`" if r.plugtron else "**not migrated**"
        lines.append(f"| `{r.lightning}` | {r.line} | {target} | {_md(r.note)} |")
    lines.append("")
    missing = m.not_migrated
    if missing:
        lines += [f"## Not migrated ({len(missing)})", "",
                  "Each is commented out (or kept, never called) in the generated code, with the same reason:", ""]
        lines += [f"- {m.filename}:{f.line}: `{f.construct}`: {f.reason}" for f in missing]
    else:
        lines.append("Everything was migrated.")
    notes = [f for f in m.findings if f.migrated]
    if notes:
        lines += ["", "## Changed on the way", ""]
        lines += [f"- {m.filename}:{f.line}: `{f.construct}`: {f.reason}" for f in notes]
    lines += ["", "## Use it", "", "```bash", 'pip install -e ".[test]"          # from this directory', "python -m pytest -q",
              f"plugtron plugins show {name}", "```"]
    required = [o.split(" ")[0] for o in m.options if o.endswith("(required)")]
    if required:
        lines += ["", "The test passes no value for the options without a default (" + ", ".join(required)
                  + "): add `plugins." + name + ".options.<name>=...` to its overrides."]
    return "\n".join(lines) + "\n"


def build_package(m: CallbackMigration, name: Optional[str] = None) -> Package:
    """The package of migration ``m`` as plugin ``name`` (default: from the class name), name checked."""
    name = name or default_name(m.cls_name)
    check_name(name, GROUP, what="plugin name (--name)")
    package = Package(name=name, kind="plugin")
    summary = f"{m.cls_name} from {m.filename}, a Lightning callback migrated by plugtron migrate callback"
    test = package.render(TEST, options="")
    if "on_load" in m.hooks:
        test += package.render(RESUME, options_only="")
    package.files = {
        "pyproject.toml": package.render(PYPROJECT, group=GROUP, target=f"{package.module}:{m.cls_name}", summary=summary),
        "README.md": render_report(m, name),
        f"src/{package.module}/__init__.py": m.module,
        f"tests/test_{name}.py": test,
    }
    return package
