"""``plugtron plugins new NAME [--kind K] [-o DIR]``: write a package skeleton (torch-free).

Its own module so the CLI wiring stays two lines in ``plugtron.cli.main``."""

from __future__ import annotations


def add_parser(plugins_actions) -> None:
    from plugtron.scaffold.kinds import KINDS  # templates only: torch-free

    new = plugins_actions.add_parser("new", help="write a ready package skeleton (pyproject, module, test, README)")
    new.add_argument("name", metavar="NAME", help="the entry-point name (a lowercase identifier); "
                                                  "the module is plugtron_NAME, the distribution plugtron-NAME")
    new.add_argument("--kind", default="plugin", choices=list(KINDS), help="what the package adds (default: plugin)")
    new.add_argument("-o", "--output", metavar="DIR", default=None,
                     help="the directory to create (default: ./plugtron-NAME); it must not exist")


def cmd_new(ns) -> int:
    from plugtron.scaffold import new_package
    from plugtron.scaffold.kinds import KINDS as ROWS

    dest = new_package(ns.name, ns.kind, ns.output)
    files = sorted(_files(dest))
    print(f"wrote {dest}/ ({ns.kind} {ns.name!r}, entry-point group {ROWS[ns.kind].group}):")
    for rel in files:
        print(f"  {rel}")
    print(f'next: pip install -e "{dest}[test]" && python -m pytest -q {dest}/tests')
    return 0


def _files(root: str):
    import os

    for top, _, names in os.walk(root):
        for n in names:
            yield os.path.relpath(os.path.join(top, n), root)
