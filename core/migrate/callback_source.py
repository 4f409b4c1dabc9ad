"""Reading a Lightning callback file for ``plugtron migrate callback``: parse it (never import it),
choose the ``Callback`` subclass, and rewrite regions of its text in place, so that comments and
formatting of the moved code survive (``ast.unparse`` would drop them)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from plugtron.migrate.script import MigrationError, dotted

Edit = Tuple[int, int, int, int, str]  # start line, start char column, end line, end char column, new text


def read(path: str) -> Tuple[str, ast.Module]:
    p = Path(path)
    if not p.is_file():
        raise MigrationError(f"{path}: no such file; expected a Python file with a Lightning Callback subclass")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); expected a Python file") from None
    try:
        return text, ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise MigrationError(f"{path}:{exc.lineno}: not valid Python ({exc.msg}); nothing was migrated") from None


def callback_classes(tree: ast.Module) -> Dict[str, ast.ClassDef]:
    """Top-level classes deriving from Lightning's ``Callback`` (``Callback``, ``pl.Callback``, ...),
    directly or through another such class of the file."""
    found: Dict[str, ast.ClassDef] = {}
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    changed = True
    while changed:
        changed = False
        for cls in classes:
            if cls.name in found:
                continue
            bases = [dotted(b) or "" for b in cls.bases]
            if any(b.rsplit(".", 1)[-1] == "Callback" or b in found for b in bases):
                found[cls.name] = cls
                changed = True
    return found


def choose(path: str, tree: ast.Module, wanted: Optional[str]) -> ast.ClassDef:
    found = callback_classes(tree)
    if wanted is not None:
        if wanted not in found:
            others = f"; its Callback subclasses: {', '.join(found)}" if found else ""
            raise MigrationError(f"{path}: --class {wanted}: no Lightning Callback subclass of that name{others}")
        return found[wanted]
    if not found:
        raise MigrationError(f"{path}: no Lightning Callback subclass found (expected `class X(Callback)` or "
                             "`class X(pl.Callback)` at module level); nothing was migrated")
    if len(found) > 1:
        lines = ", ".join(f"{n} (line {c.lineno})" for n, c in found.items())
        raise MigrationError(f"{path}: {len(found)} Callback subclasses: {lines}; choose one with --class NAME")
    return next(iter(found.values()))


class Text:
    """The file's lines, ast positions (UTF-8 byte columns) converted to characters."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines()
        self._colons = self._def_colons(text)

    def char_col(self, line: int, byte_col: int) -> int:
        return len(self.lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", "replace"))

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ""

    def short(self, node: ast.AST, limit: int = 60) -> str:
        one = " ".join(self.segment(node).split())
        return one if len(one) <= limit else one[: limit - 3] + "..."

    def edit(self, node: ast.AST, new: str) -> Edit:
        return (node.lineno, self.char_col(node.lineno, node.col_offset), node.end_lineno,
                self.char_col(node.end_lineno, node.end_col_offset), new)

    def quoted_annotations(self, s: ast.stmt, dropped) -> List[Edit]:
        """Annotations naming dropped modules become strings: never evaluated, still readable."""
        edits: List[Edit] = []
        for fn in [n for n in ast.walk(s) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            args = fn.args
            notes = [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg)
                     if a is not None and a.annotation is not None] + ([fn.returns] if fn.returns else [])
            for ann in notes:
                if {n.id for n in ast.walk(ann) if isinstance(n, ast.Name)} & set(dropped):
                    edits.append(self.edit(ann, repr(self.segment(ann))))
        return edits

    @staticmethod
    def _def_colons(text: str) -> Dict[int, int]:
        """``def`` line -> the line of the ``:`` that ends its signature (a signature may span lines)."""
        out: Dict[int, int] = {}
        pending: List[int] = []  # def lines whose colon is not seen yet
        depth = 0
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.NAME and tok.string == "def" and depth == 0:
                pending.append(tok.start[0])
            elif tok.type == tokenize.OP:
                if tok.string in "([{":
                    depth += 1
                elif tok.string in ")]}":
                    depth -= 1
                elif tok.string == ":" and depth == 0 and pending:
                    out[pending.pop()] = tok.start[0]
        return out

    def body_start(self, fn: ast.FunctionDef) -> Tuple[int, int]:
        """Line and character column where ``fn``'s body starts: the line after its signature's colon
        (so comments before the first statement move with it), or the statement's own position in a
        one-line ``def f(self): return 1``."""
        colon = self._colons.get(fn.lineno, fn.body[0].lineno - 1)
        first = fn.body[0]
        if first.lineno > colon:
            return colon + 1, 0
        return first.lineno, self.char_col(first.lineno, first.col_offset)

    def region(self, start: Tuple[int, int], last: int, edits: List[Edit], old_indent: int, indent: str,
               last_col: Optional[int] = None) -> str:
        """From ``start`` (line, column) to the end of line ``last`` (or its ``last_col``), ``edits``
        applied (none may overlap), re-indented from ``old_indent`` columns to ``indent``. A line
        indented less than ``old_indent`` (inside a multi-line string) is kept as it is."""
        first, col = start
        lines = self.lines[first - 1:last]
        if last_col is not None:
            lines[-1] = lines[-1][:last_col]
        shift = 0
        if col:  # a one-line ``def f(self): stmt``: the first line is cut at ``col``, padded to ``old_indent``
            shift = old_indent - col
            lines[0] = " " * old_indent + lines[0][col:]
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line) + 1)
        text = "\n".join(lines)
        for l0, c0, l1, c1, new in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
            a = starts[l0 - first] + c0 + (shift if l0 == first else 0)
            b = starts[l1 - first] + c1 + (shift if l1 == first else 0)
            text = text[:a] + new + text[b:]
        out = []
        for line in text.split("\n"):
            if not line.strip():
                out.append("")
            elif line[:old_indent].strip() == "":
                out.append(indent + line[old_indent:])
            else:
                out.append(line)
        return "\n".join(out)


def outermost(edits: List[Edit]) -> List[Edit]:
    """Drop edits that lie inside another one (the outer one already rewrote that text)."""
    def inside(a: Edit, b: Edit) -> bool:
        return a is not b and (b[0], b[1]) <= (a[0], a[1]) and (a[2], a[3]) <= (b[2], b[3])

    return [e for e in edits if not any(inside(e, o) for o in edits)]
