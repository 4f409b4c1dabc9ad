"""``plugtron registry list [KIND]`` and ``plugtron registry show NAME [--kind KIND]``.

``list`` reads installed metadata and the entries' source text only (``ast``; nothing is imported,
so no torch and no package's bug can break it); ``show`` imports the one entry to report its options.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import sys
from typing import List, Optional, Tuple

from plugtron import registry
from plugtron.errors import PluginError


def add_parser(sub) -> None:
    p = sub.add_parser("registry", help="everything registered: plugins, providers, recipes, optimizers, ...")
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    lst = acts.add_parser("list", help="name, kind, package and version, one line each (torch-free)")
    lst.add_argument("kind", nargs="?", choices=[k.name for k in registry.KINDS], metavar="KIND",
                     help="only this kind: " + ", ".join(k.name for k in registry.KINDS))
    show = acts.add_parser("show", help="one entry: package, module, file, API range, options")
    show.add_argument("name")
    show.add_argument("--kind", choices=[k.name for k in registry.KINDS], help="when NAME is registered in several kinds")

    def run(ns) -> int:
        if ns.action == "list":
            return cmd_list(ns)
        if ns.action == "show":
            return cmd_show(ns)
        p.print_help()
        return 2

    p.set_defaults(handler=run)


def _source_file(module: str) -> Optional[str]:
    try:
        spec = importlib.util.find_spec(module)
    except Exception:  # a parent package that fails to import
        return None
    return spec.origin if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def _first_line(text: Optional[str]) -> str:
    return (text or "").strip().split("\n")[0].strip()


def static_description(entry: registry.Entry) -> str:
    """The entry's one line, from its source without importing it: the docstring of the class or
    function, a string right after an assignment, else the module's docstring."""
    path = _source_file(entry.module)
    if path is None:
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return ""
    name = (entry.attr or "").split(".")[0]
    body = tree.body
    for i, node in enumerate(body):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return _first_line(ast.get_docstring(node) or ast.get_docstring(tree))
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            nxt = body[i + 1] if i + 1 < len(body) else None
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                return _first_line(nxt.value.value)
            if isinstance(node.value, ast.Call):
                consts = [repr(a.value) for a in node.value.args if isinstance(a, ast.Constant)]
                return f"{ast.unparse(node.value.func)}({', '.join(consts)}, ...)"
    return _first_line(ast.get_docstring(tree))


def description(entry: registry.Entry) -> str:
    if entry.kind == "recipe":  # recipe modules are plain data: import them for the summary
        try:
            from plugtron.recipes.registry import summary_of

            return summary_of(registry.load_ep("recipe", entry.name, entry.ep))
        except Exception:
            pass
    return static_description(entry)


def status(entry: registry.Entry) -> str:
    if entry.rivals:
        return "CONFLICT: also " + ", ".join(registry.package_of(e) for e in entry.rivals)
    try:
        from plugtron.api_check import check_package

        check_package(entry.ep)
    except PluginError as exc:
        return "INCOMPATIBLE: " + str(exc).split(";")[0]
    return ""


def rows(kind: Optional[str] = None) -> List[Tuple[str, str, str, str]]:
    out = []
    for k in registry.KINDS:
        if kind is not None and k.name != kind:
            continue
        for name, entry in registry.entries(k.name).items():
            note = status(entry)
            text = f"[{note}] " if note else ""
            out.append((name, k.name, entry.package, text + description(entry)))
    return out


def cmd_list(ns) -> int:
    table = [("NAME", "KIND", "PACKAGE", "DESCRIPTION")] + rows(ns.kind)
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        sys.stdout.write("  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:3])) + "  " + r[3] + "\n")
    return 0


def find(name: str, kind: Optional[str]) -> registry.Entry:
    kinds = [kind] if kind else [k.name for k in registry.KINDS]
    found = [registry.entries(k)[name] for k in kinds if name in registry.entries(k)]
    if len(found) > 1:
        raise PluginError(f"{name!r} is registered as {', '.join(e.kind for e in found)}: add --kind KIND")
    if not found:
        every = [n for k in kinds for n in registry.entries(k)]
        near = difflib.get_close_matches(name, every, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
        raise PluginError(f"{name!r} is not registered{' as a ' + kind if kind else ''}{hint}; "
                          "see plugtron registry list")
    return found[0]


def _options_class(kind: str, obj) -> Optional[type]:
    return getattr(obj, "Settings" if kind == "plugin" else "Options", None)


def show_text(name: str, kind: Optional[str] = None) -> str:
    from plugtron.api_check import declared_range
    from plugtron.cli.plugin_list import settings_rows

    entry = find(name, kind)
    spec = registry.BY_KIND[entry.kind]
    lines = [f"{entry.name}  ({spec.name}, {entry.package})", ""]
    lines.append(f"picked by:    {spec.picked_by}")
    lines.append(f"entry point:  [{spec.group}] {entry.name} = \"{entry.ep.value}\"")
    lines.append(f"module:       {entry.module}")
    lines.append(f"file:         {_source_file(entry.module) or '(not found)'}")
    from plugtron import PLUGIN_API

    try:
        declared = f"built in ({PLUGIN_API})" if entry.package.startswith("plugtron ") else declared_range(entry.ep)
    except PluginError as exc:
        declared = f"<{exc}>"
    lines.append(f"plugin API:   {declared or 'not declared (accepted)'}")
    note = status(entry)
    if note:
        lines.append(f"problem:      {note}")
    try:
        obj = registry.load(entry.kind, entry.name)
    except Exception as exc:  # show what is wrong instead of failing
        lines += ["", f"cannot be used: {exc}"]
        return "\n".join(lines) + "\n"
    doc = inspect.getdoc(obj) if not isinstance(obj, (str, int, float)) else None
    if doc and doc.startswith(f"{getattr(obj, '__name__', '')}("):  # a dataclass's generated signature
        doc = static_description(entry)
    lines += ["", *("  " + ln for ln in (doc or "(no docstring)").splitlines()), ""]
    opts_cls = _options_class(entry.kind, obj)
    opts = settings_rows(type("_", (), {"Settings": opts_cls})) if opts_cls is not None else []
    where = {"plugin": f"plugins.{name}.options", "optimizer": "optimizer_options",
             "data_format": "dataset.format_options"}.get(entry.kind, "options")
    if entry.kind == "provider":
        lines.append(f"options:      the model fields (plugtron config show model.provider={name} --section model)")
    elif not opts:
        lines.append("options:      none")
    else:
        lines.append(f"options ({where}.KEY=VALUE):")
        width = max(len(f"{n}: {t} = {d}") for n, t, d, _ in opts)
        lines += [f"  {f'{n}: {t} = {d}'.ljust(width)}  {h}".rstrip() for n, t, d, h in opts]
    return "\n".join(lines) + "\n"


def cmd_show(ns) -> int:
    sys.stdout.write(show_text(ns.name, ns.kind))
    return 0
