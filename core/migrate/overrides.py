"""``plugtron migrate nemo2-overrides "trainer.max_steps=1000 ..."``: NeMo-Run / ``nemo llm``
dotted overrides -> plugtron ``key=value`` overrides, through the same table as scripts.
``--factory llama3_8b`` (the ``nemo llm`` recipe) picks the provider as ``model=llm.llama3_8b`` does."""

from __future__ import annotations

import ast
import shlex
from typing import Any, Iterable

from plugtron.migrate.engine import Migration
from plugtron.migrate.script import MigrationError
from plugtron.migrate.table import resolve_path
from plugtron.migrate.values import Symbol


def _value(raw: str) -> Any:
    """NeMo-Run types values as Python literals (``True``, ``[0, 1]``, ``'x'``); a bare word is a
    string (``precision=bf16-mixed``) or, when dotted, a name (``model=llm.llama3_8b``)."""
    text = raw.strip()
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    lowered = {"true": True, "false": False, "none": None, "null": None}
    if text.lower() in lowered:
        return lowered[text.lower()]
    if "." in text and all(part.isidentifier() for part in text.split(".")):
        return Symbol(text)
    return text


def migrate_overrides(items: Iterable[str]) -> Migration:
    """``items``: strings, each one or more whitespace-separated ``path=value`` (shell quoting honoured)."""
    m = Migration()
    tokens = []
    for item in items:
        try:
            tokens += shlex.split(item)
        except ValueError as exc:
            raise MigrationError(f"override {item!r}: {exc}") from None
    # `nemo llm pretrain --factory llama3_8b ...`: the recipe picks the provider, as model=llm.llama3_8b
    for flag in ("--factory", "-f"):
        while flag in tokens[:-1]:
            at = tokens.index(flag)
            tokens[at:at + 2] = [f"--factory={tokens[at + 1]}"]
    for i, token in enumerate(tokens, 1):
        where = f"override {i}"
        if token.startswith("--factory="):
            m.apply("<entry point>", "factory", "model", token.split("=", 1)[1].rsplit(".", 1)[-1], where, {})
            continue
        path, sep, raw = token.partition("=")
        path = path.strip().lstrip("+~")  # Hydra's add/delete markers
        if not sep or not path:
            m.not_migrated(where, token, "expected path=value (e.g. trainer.max_steps=1000)")
            continue
        found = resolve_path(path)
        if found is None:
            m.not_migrated(where, path, "no mapping in the migration guide for this path")
            continue
        construct, prefix, arg = found
        value = _value(raw)
        m.apply(construct, prefix or path, arg, value, where, {arg: value})
    return m
