"""plugtron as users install it: the wheel, not the editable checkout.

- The hand-kept ``packages = [...]`` of pyproject.toml names every package folder of the source
  tree (a folder with an ``__init__.py``), and every folder holding Python modules is such a package
  (a folder of modules without ``__init__.py`` would be left out of the wheel silently), so no
  subpackage can be left out of the wheel.
- The wheel is built from a copy of the sources (the checkout stays clean), installed into a fresh
  target folder, and from there ``plugtron plugins list``, ``registry list`` and ``train`` (two
  iterations of a tiny model) run, with every module of the tree inside the wheel.
"""

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from test_example_plugin import _builds_offline

ROOT = Path(__file__).resolve().parent.parent


def _setuptools():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def source_packages():
    """Every package of the tree, named as installed (via pyproject's package-dir)."""
    found = set()
    for pkg, folder in _setuptools()["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]))
    return found


def test_the_packages_list_names_every_package_folder():
    for folder in _setuptools()["package-dir"].values():
        loose = sorted(str(py.parent.relative_to(ROOT)) for py in (ROOT / folder).rglob("*.py")
                       if "__pycache__" not in py.parts and not (py.parent / "__init__.py").is_file())
        assert not loose, f"folders of modules without __init__.py (the wheel would miss them): {sorted(set(loose))}"
    listed = set(_setuptools()["packages"])
    assert not source_packages() - listed, f"add to pyproject's packages: {sorted(source_packages() - listed)}"
    assert not listed - source_packages(), f"pyproject lists packages with no folder: {sorted(listed - source_packages())}"


@pytest.mark.slow
def test_the_wheel_installs_and_trains(tmp_path):
    src = tmp_path / "src"
    for folder in ("core", "plugins", "providers"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    offline = ["--no-build-isolation", "--no-index"] if _builds_offline() else []
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *offline, "-w", str(tmp_path / "dist"),
                            str(src)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("plugtron-*.whl"))
    inside = set(zipfile.ZipFile(wheel).namelist())
    for pkg, folder in _setuptools()["package-dir"].items():
        for py in (ROOT / folder).rglob("*.py"):
            name = "/".join([*pkg.split("."), *py.relative_to(ROOT / folder).parts])
            assert name in inside, f"{name} is missing from the wheel"
    assert any(n.startswith("plugtron/data/corpus/") for n in inside)
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(site)}

    def plugtron(*args, timeout=300):
        return subprocess.run([sys.executable, "-m", "plugtron", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=timeout)

    where = subprocess.run([sys.executable, "-c", "import plugtron; print(plugtron.__file__)"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert where.stdout.strip() == str(site / "plugtron" / "__init__.py"), where.stdout + where.stderr
    listed = plugtron("plugins", "list")
    assert listed.returncode == 0 and "manual_gc" in listed.stdout and "plugtron 0.1.0" in listed.stdout, listed.stderr[-2000:]
    registry = plugtron("registry", "list")
    assert registry.returncode == 0 and "llama3_8b" in registry.stdout and "tiny_llama" in registry.stdout
    from plugtron.testing import TINY

    tiny = [o for o in TINY if not o.startswith(("train.train_iters=", "train.eval_interval="))]
    trained = plugtron("train", *tiny, "train.train_iters=2", "train.eval_interval=0", f"checkpoint.save={tmp_path / 'run'}",
                       timeout=600)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    assert (tmp_path / "run" / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
