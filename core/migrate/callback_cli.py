"""``plugtron migrate callback FILE.py [--class NAME] [--name PLUGIN] [-o DIR] [--report FILE]``
(torch-free). Exit status as ``migrate nemo2``: 0 everything migrated, 1 the package was written but
something was not migrated (listed in the report), 2 an error (nothing written)."""

from __future__ import annotations

import os
import sys


def add_parser(migrate_actions) -> None:
    cb = migrate_actions.add_parser("callback", help="a NeMo 2.0 / Lightning Callback (parsed, never run) -> a plugtron plugin package")
    cb.add_argument("file", metavar="FILE.py")
    cb.add_argument("--class", dest="class_name", metavar="NAME", help="the Callback subclass to migrate (when the file has several)")
    cb.add_argument("--name", default=None, help="the plugin's name (default: the class name in snake_case, without 'Callback')")
    cb.add_argument("-o", "--output", metavar="DIR", default=None, help="the package directory to create (default: ./plugtron-NAME)")
    cb.add_argument("--report", default=None, help="also write the report (Markdown) here; it must not exist")


def cmd_callback(ns) -> int:
    from plugtron.migrate.callback import migrate_callback
    from plugtron.migrate.callback_package import build_package
    from plugtron.migrate.script import MigrationError
    from plugtron.scaffold import write_package

    m = migrate_callback(ns.file, ns.class_name)
    package = build_package(m, ns.name)
    dest = os.path.abspath(ns.output or package.dist)
    if ns.report and os.path.lexists(ns.report):
        raise MigrationError(f"{ns.report}: already exists; nothing was written (choose another --report path)")
    report = package.files["README.md"]
    write_package(package, dest)
    if ns.report:
        with open(ns.report, "x", encoding="utf-8") as f:
            f.write(report)
    else:
        sys.stdout.write(report)
    print(f"wrote {dest}/ (plugin {package.name!r}: {len(m.rows)} Lightning hook(s), {len(m.not_migrated)} construct(s) not migrated); "
          f'next: pip install -e "{dest}[test]" && python -m pytest -q {dest}/tests', file=sys.stderr if not ns.report else sys.stdout)
    return 1 if m.not_migrated else 0
