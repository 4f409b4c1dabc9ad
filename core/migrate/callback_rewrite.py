"""Rewrite the code of one Lightning hook for the plugtron hook it moves into (``plugtron migrate
callback``): Lightning arguments and ``trainer.<attr>`` become expressions on plugtron's arguments
(``callback_table``); a statement using something with no equivalent is commented out with the reason
and its line, and reported. The result is text edits on the original source (comments survive)."""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Dict, List, NamedTuple, Optional, Set, Tuple

from plugtron.migrate.callback_source import Edit, Text
from plugtron.migrate.callback_table import ARGUMENTS, BATCH_IDX, LOG_CALLS, NO_TRAINER_ATTR, TRAINER
from plugtron.migrate.script import dotted

PLUGTRON_ARGS = ("state", "metrics", "split", "exc", "plugin_state", "config", "provider", "checkpoint_dir")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Finding(NamedTuple):
    line: int
    construct: str
    reason: str
    migrated: bool  # True: a note on what changed; False: not migrated (commented out / dropped)


def _compound_parts(s: ast.stmt) -> Tuple[List[ast.AST], List[List[ast.stmt]]]:
    """A statement's own expressions (for a compound one, its header) and its blocks."""
    if isinstance(s, (ast.If, ast.While)):
        return [s.test], [s.body, s.orelse]
    if isinstance(s, (ast.For, ast.AsyncFor)):
        return [s.target, s.iter], [s.body, s.orelse]
    if isinstance(s, (ast.With, ast.AsyncWith)):
        return [i for it in s.items for i in (it.context_expr, it.optional_vars) if i is not None], [s.body]
    if isinstance(s, ast.Try) or type(s).__name__ == "TryStar":
        return ([h.type for h in s.handlers if h.type is not None],
                [s.body, *[h.body for h in s.handlers], s.orelse, s.finalbody])
    if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [*s.decorator_list, *s.args.defaults, *[d for d in s.args.kw_defaults if d]], [s.body]
    if isinstance(s, ast.ClassDef):
        return [*s.decorator_list, *s.bases, *s.keywords], [s.body]
    if isinstance(s, ast.Match):
        return [s.subject], [c.body for c in s.cases]
    return [s], []


class Rewriter:
    """One hook body (or any block of kept code) of ``cls_name`` in ``filename``.

    ``roles``: the Lightning parameter names of the hook -> their role (``trainer``, ``pl_module``...);
    ``hook``: the plugtron hook the code moves into (``None`` for code kept as it is, e.g. helpers);
    ``dropped``: names bound by dropped Lightning/NeMo imports -> their module (uses are reported)."""

    def __init__(self, text: Text, filename: str, cls_name: str, roles: Dict[str, str], hook: Optional[str],
                 dropped: Dict[str, str], renames: Optional[Dict[str, str]] = None):
        self.text, self.filename, self.cls_name, self.roles, self.hook = text, filename, cls_name, roles, hook
        self.dropped, self.renames = dropped, dict(renames or {})
        self.edits: List[Edit] = []
        self.findings: List[Finding] = []
        self.needs: Set[str] = set()  # plugtron arguments the rewritten code uses
        self.user_names: Set[str] = set()  # names the code itself binds or reads (not roles)

    # ---- what one node becomes ------------------------------------------------------------------
    def _mapped(self, expr: str, construct: str, reason: str):
        """``expr`` (written on ``state``) in this hook, or why it is not available here."""
        if self.hook == "configure_model":  # Lightning's setup: no training state yet, only the config
            if expr.startswith("state.config."):
                expr = "config." + expr[len("state.config."):]
            elif "state" in _WORD.findall(expr):
                return ("flag", "not available in configure_model (Lightning's setup runs before "
                                "anything is built or trained); move it to on_train_start")
        return ("rewrite", expr)

    def classify(self, node: ast.AST):
        """``("rewrite", text)``, ``("flag", reason)`` or ``None`` (look inside)."""
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in LOG_CALLS and isinstance(func.value, ast.Name) and (
                    func.value.id == "self" or self.roles.get(func.value.id) == "pl_module"):
                return ("flag", f"Lightning logging: {LOG_CALLS[func.attr]}")
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) and dotted(func.value.func) == "super":
                return ("flag", "super(): the plugin has no Lightning base class")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            role = self.roles.get(node.value.id)
            if role == "trainer" and isinstance(node.ctx, (ast.Store, ast.Del)):
                return ("flag", "the run's counters and settings cannot be changed from a hook (to stop: "
                                "trainer.should_stop = True)")
            if role == "trainer":
                expr, why = TRAINER.get(node.attr, (None, NO_TRAINER_ATTR))
                if expr is None:
                    return ("flag", why)
                return self._mapped(expr, f"trainer.{node.attr}", why)
            if role == "pl_module":
                return ("flag", ARGUMENTS["pl_module"][1])
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
                self.roles.get(node.value.id) == "outputs" and isinstance(node.slice, ast.Constant) and node.slice.value == "loss":
            return self._mapped("metrics.loss", "outputs['loss']", "")
        if isinstance(node, ast.Name):
            role = self.roles.get(node.id)
            if role is not None:
                expr, why = ARGUMENTS[role]
                if expr == "{step}":
                    expr = BATCH_IDX.get(self.hook or "")
                if expr is None:
                    return ("flag", why)
                return self._mapped(expr, node.id, why)
            if node.id in self.renames:
                return ("rewrite", self.renames[node.id])
            if node.id in self.dropped:
                return ("flag", f"comes from {self.dropped[node.id]}, whose import is dropped (a plugtron "
                                "plugin does not need Lightning or NeMo)")
            self.user_names.add(node.id)
        return None

    def _walk(self, node: ast.AST, flags: List[Tuple[ast.AST, str]], rewrites: List[Tuple[ast.AST, str]],
              quote: str = "") -> None:
        """``quote``: inside an f-string, its quote character, which a rewrite must not use."""
        verdict = self.classify(node)
        if verdict is None:
            if isinstance(node, ast.JoinedStr):
                src = self.text.segment(node).lstrip("rRfFbBuU")
                quote = src[:1]
            for child in ast.iter_child_nodes(node):
                self._walk(child, flags, rewrites, quote)
        elif verdict[0] == "flag":
            flags.append((node, verdict[1]))
        else:
            new = verdict[1]
            if quote and quote in new:
                new = new.replace(quote, "'" if quote == '"' else '"')
            rewrites.append((node, new))

    # ---- statements ----------------------------------------------------------------------------
    def block(self, stmts: List[ast.stmt]) -> None:
        replaced = [self.stmt(s) for s in stmts]
        if stmts and all(replaced):  # every statement became a comment: the block needs a body
            last = stmts[-1]
            l0, c0, l1, c1, new = self.edits[-1]
            self.edits[-1] = (l0, c0, l1, c1, new + "\n" + " " * last.col_offset + "pass")

    def _replace(self, s: ast.stmt, header: List[str], code: Optional[str] = None) -> None:
        indent = " " * s.col_offset
        original = textwrap.dedent(ast.get_source_segment(self.text.text, s, padded=True) or "").splitlines()
        lines = header + (["# " + ln if ln.strip() else "#" for ln in original] if code is None else [code])
        lines = [ln if i == 0 else indent + ln for i, ln in enumerate(lines)]
        self.edits.append(self.text.edit(s, "\n".join(lines)))

    def _special(self, s: ast.stmt) -> bool:
        """``trainer.should_stop = True`` -> ``state.request_stop(...)``; ``super().<hook>(...)`` removed."""
        if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Attribute) and \
                s.targets[0].attr == "should_stop" and isinstance(s.targets[0].value, ast.Name) and \
                self.roles.get(s.targets[0].value.id) == "trainer" and isinstance(s.value, ast.Constant) and \
                s.value.value is True and self.hook not in (None, "configure_model"):
            self.needs.add("state")
            self._replace(s, [], f'state.request_stop("{self.cls_name}: trainer.should_stop = True")')
            self.findings.append(Finding(s.lineno, "trainer.should_stop = True", "became state.request_stop(...): the run "
                                         "saves and stops after this step, on every rank", True))
            return True
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Attribute) and \
                isinstance(s.value.func.value, ast.Call) and dotted(s.value.func.value.func) == "super":
            where = f"{self.filename}:{s.lineno}"
            self._replace(s, [f"# removed by plugtron migrate callback ({where}): Lightning's Callback base "
                              "does nothing here"], "pass")
            self.findings.append(Finding(s.lineno, self.text.short(s), "removed: the plugin has no Lightning base "
                                         "class (Callback's own hooks do nothing)", True))
            return True
        return False

    def stmt(self, s: ast.stmt) -> bool:
        """Rewrite ``s``; ``True`` when the whole statement was replaced."""
        if self._special(s):
            return True
        own, blocks = _compound_parts(s)
        flags: List[Tuple[ast.AST, str]] = []
        rewrites: List[Tuple[ast.AST, str]] = []
        for node in own:
            self._walk(node, flags, rewrites)
        if flags:
            header = [f"# NOT MIGRATED ({self.filename}:{node.lineno}): {self.text.short(node)}: {reason}"
                      for node, reason in flags]
            self._replace(s, header)
            self.findings += [Finding(node.lineno, self.text.short(node), reason, False) for node, reason in flags]
            return True
        for node, new in rewrites:
            self.edits.append(self.text.edit(node, new))
            self.needs.update(w for w in _WORD.findall(new) if w in PLUGTRON_ARGS)
        for b in blocks:
            self.block(b)
        return False
