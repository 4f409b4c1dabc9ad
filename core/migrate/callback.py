"""``plugtron migrate callback FILE.py``: a NeMo 2.0 / Lightning ``Callback`` subclass, read statically
(parsed, never imported or run), becomes the module of a plugtron plugin.

Each Lightning hook's code moves into the plugtron hook of ``callback_table.HOOKS`` (several Lightning
hooks into one plugtron hook: private methods called in Lightning's order); ``__init__``'s parameters
become the plugin's typed ``Settings`` (its options); helpers and class attributes are kept; hooks with
no equivalent stay as private methods that are never called. Whatever has no equivalent is commented
out where it was, with the reason and ``file:line``, and listed in the migration's findings.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from plugtron.migrate.callback_rewrite import Finding, Rewriter
from plugtron.migrate.callback_settings import settings_and_init
from plugtron.migrate.callback_source import Text, callback_classes, choose, outermost, read
from plugtron.migrate.callback_table import DROPPED_IMPORTS, HOOKS, NEMO_LOGGING, RANK_ZERO_ONLY, UNMAPPED
from plugtron.migrate.script import MigrationError, dotted

_IN = "    "  # class body indentation
_BODY = _IN * 2


@dataclass
class HookRow:
    lightning: str
    line: int
    plugtron: Optional[str]  # None: not migrated
    note: str


@dataclass
class CallbackMigration:
    filename: str
    cls_name: str
    module: str = ""  # the generated module's text
    rows: List[HookRow] = field(default_factory=list)
    findings: List[Finding] = field(default_factory=list)
    options: List[str] = field(default_factory=list)  # Settings fields; required ones end with " (required)"

    @property
    def hooks(self) -> List[str]:
        return sorted({r.plugtron for r in self.rows if r.plugtron})

    @property
    def not_migrated(self) -> List[Finding]:
        return [f for f in self.findings if not f.migrated]


def _spec_args(hook: str) -> List[str]:
    from plugtron import hookspecs

    return list(inspect.signature(getattr(hookspecs, hook)).parameters)


def _free(name: str, taken) -> str:
    while name in taken:
        name += "_"
    return name


class _Generator:
    def __init__(self, path: str, class_name: Optional[str]):
        source, tree = read(path)
        self.cls = choose(path, tree, class_name)
        self.tree, self.text, self.fname = tree, Text(source), os.path.basename(path)
        self.m = CallbackMigration(self.fname, self.cls.name)
        self.dropped: Dict[str, str] = {}
        self.others = set(callback_classes(tree)) - {self.cls.name}
        self.settings_imports = ""  # set while the class is generated

    def note(self, line: int, construct: str, reason: str, migrated: bool) -> None:
        self.m.findings.append(Finding(line, construct, reason, migrated))

    def where(self, node: ast.AST) -> str:
        return f"{self.fname}:{node.lineno}"

    # ---- module level ----------------------------------------------------------------------------
    def _import(self, s: ast.stmt) -> Optional[str]:
        """The text an import becomes ('' to drop it); None: keep it as it is."""
        if isinstance(s, ast.ImportFrom):
            module = s.module or ""
            if s.level == 0 and module == NEMO_LOGGING and [a.name for a in s.names] == ["logging"]:
                alias = s.names[0].asname or "logging"
                self.note(s.lineno, self.text.short(s), "nemo.utils.logging became a standard-library logger", True)
                return f"import logging as _stdlib_logging\n\n{alias} = _stdlib_logging.getLogger(__name__)"
            bound = [(a.asname or a.name, module) for a in s.names]
        elif isinstance(s, ast.Import):
            module = s.names[0].name
            bound = [(a.asname or a.name.split(".")[0], a.name) for a in s.names]
        else:
            return None
        if not any(m == d or m.startswith(d + ".") for _, m in bound for d in DROPPED_IMPORTS):
            return None
        if not all(any(m == d or m.startswith(d + ".") for d in DROPPED_IMPORTS) for _, m in bound):
            self.note(s.lineno, self.text.short(s), "mixes Lightning/NeMo and other modules: dropped whole", False)
        self.dropped.update(bound)
        self.note(s.lineno, self.text.short(s), "dropped: a plugtron plugin does not need Lightning or NeMo", True)
        return ""

    def _kept(self, s: ast.stmt, indent: str) -> str:
        """A statement kept as it is, except uses of dropped names (commented out, reported)."""
        rw = Rewriter(self.text, self.fname, self.cls.name, {}, None, self.dropped)
        replaced = rw.stmt(s)
        self.m.findings += rw.findings
        if getattr(s, "decorator_list", None):
            start = (s.decorator_list[0].lineno, 0)  # the line of its first `@`
        else:
            col = self.text.char_col(s.lineno, s.col_offset)
            start = (s.lineno, col if self.text.lines[s.lineno - 1][:col].strip() else 0)  # `class A: x = 1`
        edits = rw.edits if replaced else outermost(rw.edits + self.text.quoted_annotations(s, self.dropped))
        end = self.text.char_col(s.end_lineno, s.end_col_offset)
        rest = self.text.lines[s.end_lineno - 1][end:].strip()  # `x = 1; y = 2`: each statement on its own
        return self.text.region(start, s.end_lineno, edits, s.col_offset, indent,
                                end if rest and not rest.startswith("#") else None)

    def module(self) -> str:
        head = [f'"""{self.cls.name}, migrated from {self.fname} by `plugtron migrate callback` (see README.md: '
                'what moved where, and what was not migrated)."""']
        pieces: List[Tuple[bool, str]] = []  # (is a definition, text)
        for s in self.tree.body:
            if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str) and s is self.tree.body[0]:
                continue  # the file's docstring: the module has its own
            if isinstance(s, ast.ImportFrom) and s.module == "__future__":
                head.append(self.text.segment(s))
                continue
            imported = self._import(s)
            if imported is not None:
                if imported:
                    pieces.append((False, imported))
                continue
            if isinstance(s, ast.ClassDef) and s.name in self.others:
                self.note(s.lineno, f"class {s.name}", "another Callback subclass of the file: not migrated "
                          "(choose it with --class)", True)
                continue
            if s is self.cls:
                pieces.append((False, '\nPLUGTRON_API = ">=1,<2"  # the plugtron plugin API this plugin is written for'))
                pieces.append((True, self.klass()))
            else:
                pieces.append((isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)), self._kept(s, "")))
        out = "\n".join(head) + "\n"
        if self.settings_imports:
            out += "\n" + self.settings_imports + "\n"
        for i, (is_def, text) in enumerate(pieces):
            if i == 0:
                out += ("\n\n" if is_def else "\n") + text
            else:
                out += ("\n\n\n" if is_def or pieces[i - 1][0] else "\n") + text
        return out.rstrip() + "\n"

    # ---- the class ---------------------------------------------------------------------------------
    def klass(self) -> str:
        cls = self.cls
        if cls.decorator_list:
            self.note(cls.lineno, "class decorators", "dropped", False)
        bases = ", ".join(self.text.short(b) for b in cls.bases)
        self.note(cls.lineno, f"class {cls.name}({bases})", "the plugin has no base class (pluggy finds its hooks "
                  "by name)", True)
        body = list(cls.body)
        lines = [f"class {cls.name}:"]
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            lines.append(self.text.region((body[0].lineno, 0), body[0].end_lineno, [], body[0].col_offset, _IN))
            body = body[1:]
        else:  # plugins list / show print it
            lines.append(f'{_IN}"""{cls.name}: a Lightning callback from {self.fname}, migrated to a plugtron plugin."""')
        lines.append(f"{_IN}# Migrated by `plugtron migrate callback` from {self.fname}:{cls.lineno}.")
        methods = {n.name: n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        for s in body:
            if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines.append(self._kept(s, _IN))
        self.settings_imports, init_text, self.m.options = settings_and_init(self, methods.get("__init__"))
        parts = [init_text] if init_text else []
        parts += self.hooks({n: f for n, f in methods.items() if n in HOOKS})
        for name, fn in methods.items():
            if name == "__init__" or name in HOOKS:
                continue
            if name in UNMAPPED or name.startswith(("on_", "configure_", "collect_")):
                parts.append(self.unmapped(fn, UNMAPPED.get(name, "not a Lightning Callback hook plugtron knows")))
            else:
                parts.append(self._kept(fn, _IN))
        return "\n".join(lines) + "".join("\n\n" + p for p in parts)

    def unmapped(self, fn: ast.FunctionDef, reason: str) -> str:
        self.m.rows.append(HookRow(fn.name, fn.lineno, None, reason))
        self.note(fn.lineno, fn.name, f"Lightning's {fn.name}: {reason}; kept as _lightning_{fn.name}, never called", False)
        line = self.text.lines[fn.lineno - 1]
        col = line.index(f"def {fn.name}") + 4
        edits = [(fn.lineno, col, fn.lineno, col + len(fn.name), f"_lightning_{fn.name}")] + self.text.quoted_annotations(fn, self.dropped)
        first = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
        comment = f"{_IN}# NOT MIGRATED ({self.fname}:{fn.lineno}): Lightning's {fn.name}: {reason}. Never called.\n"
        return comment + self.text.region((first, 0), fn.end_lineno, edits, fn.col_offset, _IN)

    # ---- hooks ---------------------------------------------------------------------------------------
    def _body(self, fn: ast.FunctionDef, hook: str) -> Tuple[str, List[str], List[str]]:
        """(body text, plugtron arguments it needs, guard conditions) of one Lightning hook."""
        rule = HOOKS[fn.name]
        positional = [*fn.args.posonlyargs, *fn.args.args][1:]
        roles = {a.arg: role for a, role in zip(positional, rule.args)}
        extras = positional[len(rule.args):] + [a for a in (fn.args.vararg, fn.args.kwarg) if a] + fn.args.kwonlyargs
        roles.update({a.arg: "extra" for a in extras})
        guards = [rule.guard] if rule.guard else []
        for dec in fn.decorator_list:
            name = dotted(dec.func if isinstance(dec, ast.Call) else dec) or ""
            if name.rsplit(".", 1)[-1] == RANK_ZERO_ONLY:
                if hook == "configure_model":
                    self.note(dec.lineno, "@rank_zero_only", "setup moves to configure_model, which has no rank: "
                              "the code now runs on every rank", False)
                else:
                    guards.append("not state.is_rank0")
        guard_words = set(re.findall(r"[a-z_]+", " ".join(guards))) & set(_spec_args(hook))
        renames: Dict[str, str] = {}
        for _ in range(2):  # a second pass when the code's own names clash with plugtron's arguments
            rw = Rewriter(self.text, self.fname, self.cls.name, roles, hook, self.dropped, renames)
            rw.block(fn.body)
            clash = (rw.needs | guard_words) & rw.user_names
            if not clash or renames:
                break
            renames = {n: _free(n + "_", rw.user_names) for n in clash}
        self.m.findings += rw.findings
        body = self.text.region(self.text.body_start(fn), fn.end_lineno, rw.edits, fn.body[0].col_offset, _BODY)
        needs = [a for a in _spec_args(hook) if a in rw.needs | guard_words]
        return body, needs, guards

    def _method(self, name: str, args: List[str], comment: str, guards: List[str], body: str, decorators: str) -> str:
        sig = ", ".join(["self", *args])
        guard = "".join(f"{_BODY}if {g}:\n{_BODY}{_IN}return\n" for g in guards)
        return f"{decorators}{_IN}def {name}({sig}):\n{_BODY}# {comment}\n{guard}{body}"

    def _decorators(self, fn: ast.FunctionDef) -> str:
        kept = []
        for dec in fn.decorator_list:
            name = dotted(dec.func if isinstance(dec, ast.Call) else dec) or ""
            if name.rsplit(".", 1)[-1] == RANK_ZERO_ONLY:
                continue
            if name.split(".")[0] in self.dropped:
                self.note(dec.lineno, f"@{name}", f"comes from {self.dropped[name.split('.')[0]]}: dropped", False)
                continue
            kept.append(f"{_IN}@{self.text.segment(dec)}\n")
        return "".join(kept)

    def hooks(self, found: Dict[str, ast.FunctionDef]) -> List[str]:
        by_target: Dict[str, List[ast.FunctionDef]] = {}
        for name in HOOKS:  # the table's order is Lightning's call order
            if name in found:
                by_target.setdefault(HOOKS[name].plugtron, []).append(found[name])
        from plugtron import hookspecs

        order = [n for n in vars(hookspecs) if n in by_target]
        out = []
        for hook in sorted(by_target, key=order.index):
            sources = by_target[hook]
            for fn in sources:
                self.m.rows.append(HookRow(fn.name, fn.lineno, hook, HOOKS[fn.name].note))
            if len(sources) == 1:
                fn = sources[0]
                body, needs, guards = self._body(fn, hook)
                out.append(self._method(hook, needs, f"Lightning's {fn.name} ({self.where(fn)})", guards, body,
                                        self._decorators(fn)))
                continue
            calls, privates, union = [], [], set()
            for fn in sources:
                body, needs, guards = self._body(fn, hook)
                union.update(needs)
                privates.append(self._method(f"_lightning_{fn.name}", needs, f"Lightning's {fn.name} ({self.where(fn)})",
                                             guards, body, self._decorators(fn)))
                calls.append(f"{_BODY}self._lightning_{fn.name}({', '.join(f'{a}={a}' for a in needs)})")
            args = [a for a in _spec_args(hook) if a in union]
            names = ", then ".join(fn.name for fn in sources)
            out.append(f"{_IN}def {hook}(self, {', '.join(args)}):\n".replace("(self, )", "(self)")
                       + f"{_BODY}# Lightning's {names}, in Lightning's order\n" + "\n".join(calls))
            out += privates
        return out


def migrate_callback(path: str, class_name: Optional[str] = None) -> CallbackMigration:
    """Read ``path`` (never import it) and migrate its Callback subclass (``class_name`` if several)."""
    gen = _Generator(path, class_name)
    gen.m.module = gen.module()
    try:
        compile(gen.m.module, f"<migrated {gen.fname}>", "exec")
    except SyntaxError as exc:  # a bug of the migration, never the user's: say so, write nothing
        raise MigrationError(f"{path}: the migrated code does not compile ({exc.msg}, line {exc.lineno}); "
                             "this is a plugtron bug, please report it with the file") from None
    gen.m.findings.sort(key=lambda f: f.line)
    return gen.m
