"""Install package directories the way a user's pip would, but into a temporary target: a real
wheel built from each package's own pyproject.toml, its entry points read from the installed
metadata, and nothing left installed in the test environment afterwards (as tests/test_example_plugin.py
does for the example package). ``--no-deps``: their dependencies are plugtron itself and attrs,
already installed. Offline when the environment can build a wheel (setuptools >= 70.1 or ``wheel``),
else through pip's usual build isolation."""

import importlib.util
import os
import subprocess
import sys


def _builds_offline() -> bool:
    import setuptools
    from packaging.version import Version

    return Version(setuptools.__version__) >= Version("70.1") or importlib.util.find_spec("wheel") is not None


def install_into(target, *package_dirs) -> None:
    offline = ["--no-build-isolation", "--no-index"] if _builds_offline() else []
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *offline, "--target",
                           str(target), *map(str, package_dirs)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def env_with(target) -> dict:
    """The environment of a fresh process that sees the packages installed into ``target``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run(args, target, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env_with(target), capture_output=True, text=True,
                          timeout=timeout)
