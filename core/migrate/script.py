"""``plugtron migrate nemo2 SCRIPT.py``: read a NeMo 2.0 training script *statically*.

The script is parsed with ``ast`` and never imported or run: NeMo need not be installed and no
line of it executes. Every call of a construct the table knows (``nl.Trainer(...)``, also wrapped
as ``run.Config(nl.Trainer, ...)`` / ``run.Partial(...)``) is migrated once, wherever it sits
(module level or inside a recipe function). Values followed: literals, names assigned exactly once
(or a function parameter's default), ``dict(...)``; anything else is reported as computed.
``var.attr = value`` on a variable holding a construct or an ``llm.pretrain/finetune`` call is
read like the NeMo-Run override ``attr=value`` of that construct.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from plugtron.errors import PlugtronError
from plugtron.migrate.engine import Migration
from plugtron.migrate.table import PATH_OF, POSITIONAL, construct_of, resolve_path
from plugtron.migrate.values import Computed, Symbol


class MigrationError(PlugtronError):
    """The script cannot be read, or (``--strict``) something was left unmigrated."""


_WRAPPERS = ("Config", "Partial")  # NeMo-Run: run.Config(Cls, **kwargs)
_LISTS = {"callbacks": "callback", "plugins": "plugin"}


class _Construct:
    def __init__(self, node: ast.Call, name: str, construct: str, callee: str, args: List[ast.expr],
                 keywords: List[ast.keyword]):
        self.node, self.name, self.construct, self.callee = node, name, construct, callee
        self.args, self.keywords = args, keywords


def dotted(node: ast.AST) -> Optional[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


_GENERIC = ("<entry point>", "<recipe>")  # names such as finetune() a script may define itself


def _as_construct(node: ast.AST, nemo_names: Set[str] = frozenset()) -> Optional[_Construct]:
    if not isinstance(node, ast.Call):
        return None
    callee = dotted(node.func)
    if callee is None:
        return None
    last = callee.rsplit(".", 1)[-1]
    args = list(node.args)
    if last in _WRAPPERS and args:
        target = dotted(args[0])
        if target is None:
            return None
        callee, last, args = target, target.rsplit(".", 1)[-1], args[1:]
    construct = construct_of(last)
    if construct in _GENERIC and not (callee.startswith("llm.") or callee.split(".")[0] in nemo_names):
        return None
    return _Construct(node, last, construct, callee, args, node.keywords) if construct else None


class ScriptMigrator:
    def __init__(self, source: str, filename: str):
        self.filename = filename
        try:
            self.tree = ast.parse(source, filename=filename)
        except SyntaxError as exc:
            raise MigrationError(f"{filename}:{exc.lineno}: not valid Python ({exc.msg}); nothing was migrated") from None
        self.bindings: Dict[str, List[ast.expr]] = {}
        self.returns: Dict[str, List[Optional[ast.expr]]] = {}  # function name -> its one return value
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        self.bindings.setdefault(t.id, []).append(node.value)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                returns = [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value is not None]
                self.returns.setdefault(node.name, []).append(returns[0] if len(returns) == 1 else None)
                a = node.args
                for arg, default in zip((a.posonlyargs + a.args)[-len(a.defaults):] if a.defaults else [], a.defaults):
                    self.bindings.setdefault(arg.arg, []).append(default)
                for arg, default in zip(a.kwonlyargs, a.kw_defaults):
                    if default is not None:
                        self.bindings.setdefault(arg.arg, []).append(default)
        # names imported from NeMo (``from nemo.collections.llm import finetune``)
        self.nemo_names: Set[str] = {
            (a.asname or a.name) for n in ast.walk(self.tree) if isinstance(n, ast.ImportFrom)
            and (n.module or "").startswith("nemo") for a in n.names}
        self.migration = Migration()

    def where(self, node: ast.AST) -> str:
        return f"{self.filename}:{getattr(node, 'lineno', '?')}"

    # ---- values ----------------------------------------------------------------------------------
    def binding(self, name: str) -> Optional[ast.expr]:
        values = self.bindings.get(name, [])
        return values[0] if len(values) == 1 else None

    def construct_behind(self, node: ast.AST, seen: Optional[Set[str]] = None) -> Optional[_Construct]:
        seen = seen or set()
        if isinstance(node, ast.Name) and node.id not in seen and self.binding(node.id) is not None:
            return self.construct_behind(self.binding(node.id), seen | {node.id})
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in seen:
            returned = self.returns.get(node.func.id, [])
            if len(returned) == 1 and returned[0] is not None:  # a recipe helper: def model(): return run.Config(...)
                return self.construct_behind(returned[0], seen | {node.func.id})
        return _as_construct(node, self.nemo_names)

    def value(self, node: ast.AST, seen: Optional[Set[str]] = None) -> Any:
        seen = seen or set()
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
        if isinstance(node, ast.Name):
            if node.id in self.bindings:
                bound = self.binding(node.id)
                if bound is None or node.id in seen:
                    return Computed(f"{node.id} (assigned {len(self.bindings[node.id])} times)")
                return self.value(bound, seen | {node.id})
            return Symbol(node.id)
        if isinstance(node, ast.Attribute):
            name = dotted(node)
            if name is not None and name.split(".")[0] not in self.bindings:
                return Symbol(name)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.value(e, seen) for e in node.elts]
            return Computed(ast.unparse(node)) if any(isinstance(i, (Computed, Symbol)) for i in items) else items
        if isinstance(node, ast.Dict) and None not in node.keys:
            keys = [self.value(k, seen) for k in node.keys]
            vals = [self.value(v, seen) for v in node.values]
            if all(isinstance(k, str) for k in keys) and not any(isinstance(v, Computed) for v in vals):
                return dict(zip(keys, vals))
        if isinstance(node, ast.Call) and dotted(node.func) == "dict" and not node.args:
            if all(k.arg for k in node.keywords):
                vals = {k.arg: self.value(k.value, seen) for k in node.keywords}
                if not any(isinstance(v, Computed) for v in vals.values()):
                    return vals
        return Computed(ast.unparse(node))

    # ---- constructs --------------------------------------------------------------------------------
    def run(self) -> Migration:
        for node in ast.walk(self.tree):
            self.report_unknown_nemo_class(node)
        calls = [c for c in (_as_construct(n, self.nemo_names) for n in ast.walk(self.tree)) if c is not None]
        for c in sorted(calls, key=lambda c: (c.node.lineno, c.node.col_offset)):
            self.migrate_construct(c)
        for node in sorted((n for n in ast.walk(self.tree) if isinstance(n, ast.Assign)), key=lambda n: n.lineno):
            for target in node.targets:
                if isinstance(target, ast.Attribute):
                    self.migrate_attribute(target, node.value)
        return self.migration

    def migrate_construct(self, c: _Construct) -> None:
        m, names = self.migration, POSITIONAL.get(c.construct, ())
        given: List[Tuple[str, ast.expr]] = []
        for i, node in enumerate(c.args):
            if i < len(names):
                given.append((names[i], node))
            else:
                m.not_migrated(self.where(node), c.name, f"positional argument {i + 1} (`{ast.unparse(node)}`) is not followed")
        for kw in c.keywords:
            if kw.arg is None:
                m.not_migrated(self.where(kw.value), c.name, f"`**{ast.unparse(kw.value)}` is not followed")
            else:
                given.append((kw.arg, kw.value))
        args: Dict[str, Any] = {"__callee__": c.callee}
        linked = set()
        for arg, node in given:
            items = self.list_behind(node) if arg in _LISTS else None
            if self.construct_behind(node) is not None:
                linked.add(arg)  # migrated as its own construct
            elif items is not None:
                self.check_list(c, arg, items)
                linked.add(arg)
            else:
                args[arg] = self.value(node)
        m.apply(c.construct, c.name, "*", None, self.where(c.node), args)
        for arg, node in given:
            if arg in linked:
                continue
            value = args[arg]
            if c.construct in ("<model config>", "<model>") and arg == "tokenizer" and isinstance(value, dict):
                for k, v in value.items():
                    m.apply("<tokenizer dict>", "tokenizer", k, v, self.where(node), value)
                continue
            m.apply(c.construct, c.name, arg, value, self.where(node), args)

    def report_unknown_nemo_class(self, node: ast.AST) -> None:
        """``llm.GemmaConfig(...)``, ``run.Config(llm.FooDataModule, ...)``: a NeMo model, config or data
        class the table does not know is reported, not skipped silently."""
        if not isinstance(node, ast.Call) or _as_construct(node, self.nemo_names) is not None:
            return
        callee = dotted(node.func) or ""
        if callee.rsplit(".", 1)[-1] in _WRAPPERS and node.args:
            callee = dotted(node.args[0]) or ""
        last = callee.rsplit(".", 1)[-1]
        if callee.startswith("llm.") and ("Config" in last or last.endswith(("Model", "DataModule"))) and last[:1].isupper():
            self.migration.not_migrated(self.where(node), last, f"NeMo's {callee} has no plugtron equivalent in the "
                                        "table (see docs/migration.md for the supported classes)")

    def list_behind(self, node: ast.AST) -> Optional[List[ast.expr]]:
        """The elements of ``[...]`` given directly or through a name assigned once."""
        if isinstance(node, ast.Name):
            node = self.binding(node.id)
        return list(node.elts) if isinstance(node, (ast.List, ast.Tuple)) else None

    def check_list(self, c: _Construct, arg: str, items: List[ast.expr]) -> None:
        """Every element of ``callbacks=[...]`` / ``plugins=[...]`` that is not a known construct is reported."""
        for item in items:
            if self.construct_behind(item) is not None:
                continue
            call = self.binding(item.id) if isinstance(item, ast.Name) and self.binding(item.id) is not None else item
            what = dotted(call.func) if isinstance(call, ast.Call) else ast.unparse(item)
            if isinstance(call, ast.Call) and call.args and (dotted(call.func) or "").endswith(_WRAPPERS):
                what = dotted(call.args[0]) or what
            self.migration.not_migrated(self.where(item), f"{c.name}.{arg}",
                                        f"unknown {_LISTS[arg]} `{what}`: the migration guide has no mapping for it")

    def migrate_attribute(self, target: ast.Attribute, value_node: ast.expr) -> None:
        name = dotted(target)
        if name is None or self.construct_behind(value_node) is not None:
            return  # a construct assigned to a slot is migrated as its own construct
        var, *attrs = name.split(".")
        holder = self.construct_behind(ast.Name(id=var)) if var in self.bindings else None
        if holder is None:
            return
        if len(attrs) == 1 and holder.construct not in _GENERIC:  # trainer.max_steps = 5
            value = self.value(value_node)
            self.migration.apply(holder.construct, holder.name, attrs[0], value, self.where(target), {attrs[0]: value})
            return
        if holder.construct in _GENERIC:  # recipe.trainer.max_steps = 5: a NeMo-Run path
            path = ".".join(attrs)
        elif holder.construct in PATH_OF:
            path = ".".join([PATH_OF[holder.construct]] + attrs)
        else:
            path = None
        found = resolve_path(path) if path else None
        if found is None:
            self.migration.not_migrated(self.where(target), name, "no mapping in the migration guide for this attribute")
            return
        construct, prefix, arg = found
        value = self.value(value_node)
        if construct == "<model config>" or construct == "<model>":
            construct_name = holder.name if holder.construct == construct else prefix
        else:
            construct_name = prefix or holder.name
        self.migration.apply(construct, construct_name, arg, value, self.where(target), {arg: value})


def migrate_script(path: str) -> Migration:
    p = Path(path)
    if not p.is_file():
        raise MigrationError(f"{path}: no such file")
    try:
        source = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return ScriptMigrator(source, p.name).run()
