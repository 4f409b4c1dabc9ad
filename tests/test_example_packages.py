"""The example packages of every kind a third party can add (``examples/plugtron-*``), each the way a
user gets it: built as a wheel through its own pyproject.toml, installed into a fresh target folder
(``pip install --no-deps --target``; nothing stays installed), and its own tests run in a fresh
pytest with that folder on ``PYTHONPATH``. Found through its installed metadata, as for any user.
All four are built and installed by one pip command into one folder, and their tests run in one
fresh pytest (one import of torch and Megatron instead of four; each package's tests must also pass
with the other three installed, as on a user's machine with several plugins); each package's own
test then checks its share of that run by the test ids of its folder.

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


def install(packages, target: Path) -> dict:
    """``packages`` (folders) built and installed into ``target``; the environment that sees them."""
    offline = ["--no-build-isolation", "--no-index"] if _builds_offline() else []
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *offline, "--target", str(target),
                           *map(str, packages)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env.pop("PYTEST_ADDOPTS", None)
    return env


@pytest.fixture(scope="module")
def together(tmp_path_factory):
    """Every package installed into one folder and all their tests run in one pytest: (pytest's
    output, outcomes by test id, ``registry list``'s output)."""
    tmp = tmp_path_factory.mktemp("examples")
    env = install([EXAMPLES / name for name in PACKAGES], tmp / "site")
    # Their pyproject.toml's [tool.pytest.ini_options] are identical; -c takes one of them, the
    # rootdir (examples/) makes each test id start with its package's folder.
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "-c",
                          str(EXAMPLES / next(iter(PACKAGES)) / "pyproject.toml"), "--rootdir", str(EXAMPLES),
                          *[f"{name}/tests" for name in PACKAGES]],
                         cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=900)
    outcomes = {}
    for line in run.stdout.splitlines():  # -rA: "PASSED plugtron-lion/tests/test_lion.py::test_x"
        word, _, test_id = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS") and "::" in test_id:
            outcomes[test_id.split(" - ")[0]] = word
    listed = subprocess.run([sys.executable, "-m", "plugtron", "registry", "list"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    return run, outcomes, listed.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PACKAGES))
def test_example_package_installs_and_its_tests_pass(name, together):
    run, outcomes, listed = together
    mine = {test_id: outcome for test_id, outcome in outcomes.items() if test_id.startswith(f"{name}/tests/")}
    assert list(mine.values()) == ["PASSED"] * PACKAGES[name], (mine, run.stdout[-4000:] + run.stderr[-2000:])
    assert f"{name} 0.1.0" in listed, listed


def test_every_example_package_is_tested():
    found = {p.name for p in EXAMPLES.glob("plugtron-*") if (p / "pyproject.toml").is_file()}
    assert found == set(PACKAGES) | {"plugtron-example-plugin"}
