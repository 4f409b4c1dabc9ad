"""Installed-looking distributions made on the fly: a ``NAME-VERSION.dist-info`` (METADATA and
entry_points.txt) and module files in a folder put on ``sys.path``, found by ``importlib.metadata``
exactly as a pip-installed package is, without pip."""

import sys
from pathlib import Path
from typing import Dict


def make_dist(root: Path, name: str, version: str, entry_points: Dict[str, Dict[str, str]],
              modules: Dict[str, str] = None) -> Path:
    """``entry_points``: group -> {name: "module:attr"}; ``modules``: "pkg/mod.py" -> source."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    text = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
                   for group, eps in entry_points.items())
    (info / "entry_points.txt").write_text(text)
    for rel, source in (modules or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


def on_path(monkeypatch, root: Path) -> None:
    """``root`` importable and its distributions visible to the registry (until the test ends)."""
    from plugtron import registry

    monkeypatch.syspath_prepend(str(root))
    for mod in [m for m in sys.modules if m.startswith("fakepkg")]:
        monkeypatch.delitem(sys.modules, mod)
    registry.refresh()
