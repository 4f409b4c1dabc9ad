"""``plugtron migrate nemo2 SCRIPT.py`` and ``plugtron migrate nemo2-overrides "..."`` (torch-free).

Exit status: 0 everything migrated, 1 written but something was not migrated (listed in the
report), 2 an error (``--strict`` turns "not migrated" into an error and writes nothing).
"""

from __future__ import annotations

import os
import sys


def add_parser(sub) -> None:
    mig = sub.add_parser("migrate", help="NeMo 2.0 script / NeMo-Run overrides -> plugtron config")
    acts = mig.add_subparsers(dest="action", metavar="ACTION")
    script = acts.add_parser("nemo2", help="a NeMo 2.0 training script or recipe (parsed, never run) -> plugtron YAML")
    script.add_argument("script", metavar="SCRIPT.py")
    script.add_argument("-o", "--output", default="plugtron.yaml", help="YAML to write (default: plugtron.yaml)")
    script.add_argument("--report", default=None, help="write the report (Markdown) here instead of stdout")
    script.add_argument("--strict", action="store_true", help="anything not migrated is an error (nothing is written)")
    script.add_argument("--force", action="store_true", help="overwrite an existing output file")
    ovr = acts.add_parser("nemo2-overrides", help='NeMo-Run overrides ("trainer.max_steps=10 ...") -> plugtron overrides')
    ovr.add_argument("overrides", nargs="+", metavar='"path=value ..."')
    ovr.add_argument("--strict", action="store_true", help="anything not migrated is an error")
    from plugtron.migrate.callback_cli import add_parser as add_callback_parser  # torch-free

    add_callback_parser(acts)


def _strict_error(m, source: str):
    from plugtron.migrate.script import MigrationError

    items = "".join(f"\n  {u.where}: {u.nemo}: {u.reason}" for u in m.unmapped)
    return MigrationError(f"{source}: {len(m.unmapped)} setting(s) not migrated (--strict):{items}")


def _refuse_existing(paths, force: bool) -> None:
    """Never overwrite what is already there unless asked (checked for every output before any is written)."""
    from plugtron.migrate.script import MigrationError

    for path in paths:
        if path and os.path.exists(path) and not force:
            raise MigrationError(f"{path}: already exists; choose another -o/--report path or pass --force")


def _write(path: str, text: str) -> None:
    """Atomically: a reader sees the old file or the new one."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def cmd_nemo2(ns) -> int:
    from plugtron.config.yaml_io import dumps
    from plugtron.migrate import migrate_script
    from plugtron.migrate.report import render

    m = migrate_script(ns.script)
    if ns.strict and m.unmapped:
        raise _strict_error(m, ns.script)
    header = (f"# Migrated from {os.path.basename(ns.script)} by `plugtron migrate nemo2` (see the report).\n"
              "# Fields not set here take Megatron Bridge's defaults with --recipe none (the guide's model):\n"
              f"#   plugtron config show {os.path.basename(ns.output)} --recipe none\n")
    _refuse_existing((ns.output, ns.report), ns.force)
    _write(ns.output, header + dumps(m.tree()))
    report = render(m, ns.script, ns.output)
    if ns.report:
        _write(ns.report, report)
        print(f"wrote {ns.output} and {ns.report} ({len(m.rows)} settings, {len(m.unmapped)} not migrated)")
    else:
        sys.stdout.write(report)
    return 1 if m.unmapped else 0


def cmd_nemo2_overrides(ns) -> int:
    from plugtron.migrate import migrate_overrides

    m = migrate_overrides(ns.overrides)
    if ns.strict and m.unmapped:
        raise _strict_error(m, "overrides")
    print(" ".join(_quote(o) for o in m.overrides()))
    for u in m.unmapped:
        print(f"not migrated: {u.where}: {u.nemo}: {u.reason}", file=sys.stderr)
    for r in m.rows:
        if r.note and r.field:
            print(f"note: {r.nemo} -> {r.field}: {r.note}", file=sys.stderr)
    return 1 if m.unmapped else 0


def _quote(item: str) -> str:
    import shlex

    return shlex.quote(item)
