"""``plugtron plugins new NAME``: write a ready package skeleton for one kind of plugtron extension
(torch-free: it only writes text files).

The package holds a ``pyproject.toml`` whose entry point registers the extension under ``NAME``, the
module, a test written with ``plugtron.testing`` that passes unchanged, and a README. What each kind
writes is one row of :data:`plugtron.scaffold.kinds.KINDS`. Nothing is ever overwritten: the files are
written into a fresh directory next to the target and renamed into place in one step, so a failure
leaves nothing behind.
"""

from __future__ import annotations

from plugtron.scaffold.kinds import new_package
from plugtron.scaffold.package import Package, ScaffoldError, check_name, write_package

__all__ = ["Package", "ScaffoldError", "check_name", "new_package", "write_package"]
