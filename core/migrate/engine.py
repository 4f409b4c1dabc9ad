"""Applying the table: one ``Migration`` collects the plugtron fields, the report rows and what
could not be migrated, whichever front end (script or NeMo-Run overrides) read the NeMo settings."""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional

from plugtron.migrate.table import Drop, Rule, Unsupported, rule_for
from plugtron.migrate.values import Computed, NotMigrated, Symbol, hf_import_command, transform


class Row(NamedTuple):
    where: str
    nemo: str
    field: Optional[str]
    value: Any
    note: str


class Unmapped(NamedTuple):
    where: str
    nemo: str
    reason: str


class _Set(NamedTuple):
    value: Any
    where: str
    nemo: str
    weak: bool


class Migration:
    def __init__(self) -> None:
        self.rows: List[Row] = []
        self.unmapped: List[Unmapped] = []
        self.fields: Dict[str, _Set] = {}

    # ---- recording ---------------------------------------------------------------------------
    def not_migrated(self, where: str, nemo: str, reason: str) -> None:
        self.unmapped.append(Unmapped(where, nemo, reason))
        self.unmapped.sort(key=lambda u: _line(u.where))

    def apply(self, construct: str, name: str, arg: str, value: Any, where: str, args: Dict[str, Any]) -> None:
        """One NeMo setting ``name(arg=value)`` (``arg`` ``"*"``: the construct's presence)."""
        nemo = name if arg == "*" else f"{name}.{arg}"
        rule = rule_for(construct, arg)
        if rule is None:
            if arg != "*":
                self.not_migrated(where, nemo, "no mapping in the migration guide")
            return
        if isinstance(rule, Unsupported):
            self.not_migrated(where, nemo, rule.reason)
            return
        if isinstance(rule, Drop):
            self.rows.append(Row(where, nemo, None, _show(value), rule.note))
            return
        if isinstance(rule, str):
            rule = Rule(rule)
        if isinstance(value, Computed):
            self.not_migrated(where, nemo, f"computed value `{value.source}` is not evaluated; "
                              f"set {rule.field or 'it'} by hand")
            return
        try:
            settings = transform(rule.transform)(rule.field, value, args, name)
        except NotMigrated as exc:
            self.not_migrated(where, nemo, str(exc))
            return
        if not settings:
            self.rows.append(Row(where, nemo, None, _show(value), rule.note))
        for field, new, weak in settings:
            note = rule.note
            if rule.transform == "hf_import" and isinstance(value, str) and value.startswith("hf://"):
                note = f"run first: {hf_import_command(value, new)}"
            self._set(field, new, where, nemo, weak, note)

    def _set(self, field: str, value: Any, where: str, nemo: str, weak: bool, note: str) -> None:
        if isinstance(value, Symbol):
            self.not_migrated(where, nemo, f"`{value.dotted}` is a name, not a value plugtron can use; set {field} by hand")
            return
        old = self.fields.get(field)
        if old is not None and old.value != value:
            if weak:
                self.rows.append(Row(where, nemo, field, value, f"{note}; not applied: {old.nemo} ({old.where}) "
                                                               f"already set {old.value!r}".lstrip("; ")))
                return
            if not old.weak:
                self.not_migrated(where, nemo, f"{field}={value!r} conflicts with {old.nemo} ({old.where}) = "
                                  f"{old.value!r}; the first is kept")
                return
        self.fields[field] = _Set(value, where, nemo, weak)
        self.rows.append(Row(where, nemo, field, value, note))

    # ---- results -------------------------------------------------------------------------------
    def tree(self) -> Dict[str, Any]:
        """The plugtron config as nested data (``{}`` sections merge with their fields)."""
        import copy

        out: Dict[str, Any] = {}
        for field in sorted(self.fields, key=lambda f: f.count(".")):
            value = copy.deepcopy(self.fields[field].value)
            node, parts = out, field.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
                continue
            node[parts[-1]] = value
        return _ordered(out)

    def flat(self) -> Dict[str, Any]:
        return {f: s.value for f, s in self.fields.items()}

    def overrides(self) -> List[str]:
        from plugtron.config.yaml_io import dumps

        out = []
        for field, s in self.fields.items():
            if isinstance(s.value, dict) and any(f.startswith(field + ".") for f in self.fields):
                continue
            text = dumps(s.value).strip()
            if text.endswith("\n...") or "\n" in text:
                text = _flow(s.value)
            out.append(f"{field}={text.removesuffix(chr(10) + '...')}")
        return out


_SECTION_ORDER = ["model", "train", "optimizer", "scheduler", "dataset", "tokenizer", "checkpoint", "logger",
                  "dist", "ddp", "mixed_precision", "profiling", "comm_overlap", "peft"]


def _ordered(tree: Dict[str, Any]) -> Dict[str, Any]:
    keys = sorted(tree, key=lambda k: _SECTION_ORDER.index(k) if k in _SECTION_ORDER else len(_SECTION_ORDER))
    out = {}
    for k in keys:
        v = tree[k]
        if isinstance(v, dict) and "provider" in v:  # provider first: it picks the defaults below it
            v = {"provider": v["provider"], **{x: y for x, y in v.items() if x != "provider"}}
        out[k] = v
    return out


def _flow(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()


def _line(where: str):
    head, _, tail = where.rpartition(":") if ":" in where else where.rpartition(" ")
    return (head, int(tail) if tail.isdigit() else 0)


def _show(value: Any) -> Any:
    if isinstance(value, Symbol):
        return value.dotted
    if isinstance(value, Computed):
        return value.source
    return value
