"""The whole path a third party takes, on every CI run: build and install the example package
(``examples/plugtron-example-plugin``) and run its own tests, written with ``plugtron.testing``.

How it is installed: ``pip install --no-deps --target <tmp>`` from the repository, then its tests
run in a fresh ``python -m pytest`` with ``<tmp>`` on ``PYTHONPATH``. That builds a real wheel through
the package's own pyproject.toml (the entry point comes from its installed metadata, as for any user)
without touching the test environment: nothing stays installed to change ``plugins list`` or other
tests, and a rerun starts clean. ``--no-deps``: its dependencies (plugtron, attrs) are the ones under
test, already installed by CI's ``pip install -e ".[test]"``. The build backend comes from the
environment when it can build a wheel offline (setuptools >= 70.1, or the ``wheel`` package), and
otherwise through pip's usual build isolation - the same way CI installed plugtron itself."""

import os
import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugtron-example-plugin"


def _child_cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _builds_offline() -> bool:
    import importlib.util

    import setuptools
    from packaging.version import Version

    return Version(setuptools.__version__) >= Version("70.1") or importlib.util.find_spec("wheel") is not None


def test_example_package_installs_and_its_tests_pass(tmp_path):
    target = tmp_path / "site"
    offline = ["--no-build-isolation", "--no-index"] if _builds_offline() else []
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *offline, "--target", str(target), str(EXAMPLE)],
        capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    assert any(p.name.startswith("plugtron_example_plugin-") for p in target.glob("*.dist-info"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.pop("PYTEST_ADDOPTS", None)
    t0, cpu0 = time.perf_counter(), _child_cpu_s()
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=600)
    took, cpu = time.perf_counter() - t0, _child_cpu_s() - cpu0
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "2 passed" in run.stdout, run.stdout[-2000:]
    show = subprocess.run([sys.executable, "-m", "plugtron", "plugins", "show", "best_loss"], env=env,
                          capture_output=True, text=True, timeout=300)  # as docs/plugins.md shows it
    assert show.returncode == 0, show.stderr[-2000:]
    assert "plugtron-example-plugin 0.1.0" in show.stdout
    assert "min_delta: float = 0.0  smallest improvement that counts" in show.stdout
    # target: under 30 s on 2 cores. Not asserted (a shared CI machine's load decides the wall time);
    # the CPU time is the load-independent part of it.
    print(f"example package tests: {took:.1f} s wall, {cpu:.1f} s CPU (user+sys), load average {os.getloadavg()[0]:.1f}")
