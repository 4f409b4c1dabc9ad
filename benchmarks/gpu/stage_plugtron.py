"""Make this checkout importable as ``plugtron`` from a folder on ``PYTHONPATH``, without pip.

    python3 benchmarks/gpu/stage_plugtron.py /tmp/site     # then: export PYTHONPATH=/tmp/site

For a machine where ``pip install -e .`` is not an option (no network for build requirements, and
pip must not touch its preinstalled torch). Copies the three source folders into the installed
layout that ``pyproject.toml`` declares (``core`` -> ``plugtron``, ``plugins`` -> ``plugtron.plugins``,
``providers`` -> ``plugtron.providers``) and writes a ``plugtron-<version>.dist-info`` with the
project's entry points, so ``importlib.metadata`` finds the built-in plugins exactly as after an
install. Standard library only (``tomllib``: Python >= 3.11).
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def stage(dest: str) -> str:
    """Copy the packages into ``dest`` and write their dist-info. Returns the dist-info path."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    package_dir = project["tool"]["setuptools"]["package-dir"]  # {"plugtron": "core", ...}
    meta = project["project"]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    # parents first: "plugtron" before "plugtron.plugins"
    for package in sorted(package_dir, key=lambda p: p.count(".")):
        target = os.path.join(dest, *package.split("."))
        if os.path.isdir(target):
            shutil.rmtree(target)
        shutil.copytree(os.path.join(ROOT, package_dir[package]), target, ignore=ignore)
    info = os.path.join(dest, f"{meta['name']}-{meta['version']}.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    lines = []
    groups = dict(meta.get("entry-points", {}))
    if meta.get("scripts"):
        groups["console_scripts"] = meta["scripts"]
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {target}" for name, target in entries.items())
        lines.append("")
    with open(os.path.join(info, "entry_points.txt"), "w") as f:
        f.write("\n".join(lines))
    return info


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python3 benchmarks/gpu/stage_plugtron.py DEST_DIR")
    print(f"staged plugtron from {ROOT}: {stage(sys.argv[1])}")
