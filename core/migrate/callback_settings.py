"""A Lightning callback's ``__init__`` parameters become the plugin's typed ``Settings`` (its options,
``plugins.NAME.options``, checked like the rest of the config); ``__init__``'s code moves into the
plugin's constructor, which reads each parameter from its settings first."""

from __future__ import annotations

import ast
from typing import List, Optional, Tuple

from plugtron.migrate.callback_rewrite import Rewriter

_IN, _BODY = "    ", "        "
_SIMPLE = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict", tuple: "tuple"}
_FACTORY = (ast.List, ast.Dict, ast.Set)


def _literal(node: ast.AST):
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _field(gen, arg: ast.arg, default: Optional[ast.expr]) -> Tuple[str, bool]:
    """``name: type = default`` of one parameter, and whether it needs ``typing``."""
    uses_dropped = lambda node: bool({n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & set(gen.dropped))  # noqa: E731
    ann = arg.annotation
    if ann is not None and not uses_dropped(ann):
        typ = gen.text.segment(ann)
    else:
        ok, value = _literal(default) if default is not None else (False, None)
        typ = _SIMPLE.get(type(value), "typing.Any") if ok else "typing.Any"
        if ann is not None:
            gen.note(ann.lineno, gen.text.short(ann), f"the type of option {arg.arg!r} comes from Lightning/NeMo: "
                     "typing.Any", True)
    if default is None:
        return f"{_BODY}{arg.arg}: {typ}", typ.startswith("typing.")
    if uses_dropped(default):
        gen.note(default.lineno, gen.text.short(default), f"the default of option {arg.arg!r} comes from "
                 "Lightning/NeMo: the option is now required", False)
        return f"{_BODY}{arg.arg}: {typ}", typ.startswith("typing.")
    src = gen.text.segment(default)
    value = f"attrs.field(factory=lambda: {src})" if isinstance(default, _FACTORY) else src
    return f"{_BODY}{arg.arg}: {typ} = {value}", typ.startswith("typing.")


def settings_and_init(gen, init: Optional[ast.FunctionDef]) -> Tuple[str, str, List[str]]:
    """(imports the module needs, the Settings class and __init__ as text, the options)."""
    if init is None:
        return "", "", []
    args = init.args
    positional = [*args.posonlyargs, *args.args][1:]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
    for extra in (args.vararg, args.kwarg):
        if extra is not None:
            gen.note(init.lineno, f"{'*' if extra is args.vararg else '**'}{extra.arg}", "not an option: a plugin's "
                     "options are the named parameters of __init__", False)
    rw = Rewriter(gen.text, gen.fname, gen.cls.name, {}, None, gen.dropped)
    rw.block(init.body)
    gen.m.findings += rw.findings
    body = gen.text.region(gen.text.body_start(init), init.end_lineno, rw.edits, init.body[0].col_offset, _BODY)
    where = f"{gen.fname}:{init.lineno}"
    if not params:
        return "", f"{_IN}def __init__(self):\n{_BODY}# Lightning's __init__ ({where})\n{body}", []
    fields, typing_used = [], False
    for arg, default in params:
        text, needs_typing = _field(gen, arg, default)
        fields.append(text)
        typing_used |= needs_typing
    options = [a.arg + ("" if d is not None else " (required)") for a, d in params]
    settings = (f"{_IN}@attrs.define(kw_only=True)\n{_IN}class Settings:\n"
                f'{_BODY}"""The parameters of the Lightning callback\'s __init__ ({where}): this plugin\'s options."""\n\n'
                + "\n".join(fields))
    reads = "".join(f"{_BODY}{a.arg} = _settings.{a.arg}\n" for a, _ in params)
    init_text = (f"{_IN}def __init__(self, _config, _settings):\n{_BODY}# Lightning's __init__ ({where}); its parameters "
                 f"are the options in Settings\n{reads}{body}")
    imports = "import attrs" + ("\nimport typing" if typing_used else "")
    return imports, settings + "\n\n" + init_text, options
