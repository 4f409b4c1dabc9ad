"""The migration report: one row per NeMo setting (where, NeMo 2.0, plugtron, value, note), then
everything that was not migrated with its reason."""

from __future__ import annotations

from typing import Any, List

from plugtron.migrate.engine import Migration


def _cell(v: Any) -> str:
    text = "" if v is None else str(v)
    return text.replace("|", "\\|").replace("\n", " ")


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is True or v is False:
        return "true" if v else "false"
    return "" if v is None else repr(v)


def render(m: Migration, source: str, output: str = "") -> str:
    lines: List[str] = [f"# plugtron migrate: {source}", ""]
    if output:
        lines += [f"Wrote `{output}`. Check it with `plugtron config show {output} --recipe none` (fields the "
                  "script does not set take Megatron Bridge's defaults; with the default recipe, tiny's).", ""]
    lines += ["| where | NeMo 2.0 | plugtron | value | note |", "|---|---|---|---|---|"]
    for r in m.rows:
        field = f"`{r.field}`" if r.field else "(nothing to set)"
        lines.append(f"| {_cell(r.where)} | `{_cell(r.nemo)}` | {field} | {_cell(_value(r.value))} | {_cell(r.note)} |")
    lines.append("")
    if m.unmapped:
        lines += [f"## Not migrated ({len(m.unmapped)})", ""]
        lines += [f"- {u.where}: `{u.nemo}`: {u.reason}" for u in m.unmapped]
    else:
        lines.append("Everything was migrated.")
    return "\n".join(lines) + "\n"
