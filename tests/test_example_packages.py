"""The example packages of every kind a third party can add (``examples/plugtron-*``), each the way a
user gets it: built as a wheel through its own pyproject.toml, installed into a fresh target folder
(``pip install --no-deps --target``; nothing stays installed), and its own tests run in a fresh
pytest with that folder on ``PYTHONPATH``. Found through its installed metadata, as for any user.

- plugtron-stablelm: a model family (provider + Hugging Face mapping + recipe; logits vs transformers)
- plugtron-lion: an optimizer (``optimizer.optimizer: lion`` with typed ``optimizer_options``)
- plugtron-dolly: an SFT and a pretraining data format (``dataset.data_format: dolly`` / ``dolly_text``)
- plugtron-tokens: a command (``plugtron tokens FILE``)
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_example_plugin import _builds_offline

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# package folder -> its tests' count (a test that silently stops being collected fails here)
PACKAGES = {"plugtron-stablelm": 4, "plugtron-lion": 3, "plugtron-dolly": 4, "plugtron-tokens": 3}


def install(package: Path, target: Path) -> dict:
    """``package`` built and installed into ``target``; the environment that sees it."""
    offline = ["--no-build-isolation", "--no-index"] if _builds_offline() else []
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *offline, "--target", str(target),
                           str(package)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.pop("PYTEST_ADDOPTS", None)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PACKAGES))
def test_example_package_installs_and_its_tests_pass(name, tmp_path):
    env = install(EXAMPLES / name, tmp_path / "site")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=EXAMPLES / name,
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert f"{PACKAGES[name]} passed" in run.stdout, run.stdout[-2000:]
    listed = subprocess.run([sys.executable, "-m", "plugtron", "registry", "list"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0 and f"{name} 0.1.0" in listed.stdout, listed.stderr[-2000:]


def test_every_example_package_is_tested():
    found = {p.name for p in EXAMPLES.glob("plugtron-*") if (p / "pyproject.toml").is_file()}
    assert found == set(PACKAGES) | {"plugtron-example-plugin"}
