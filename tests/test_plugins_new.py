"""``plugtron plugins new``: every kind renders a valid package; the plugin kind installs (a wheel into a
temporary target), passes its own tests unchanged in a fresh pytest and is listed; bad names are refused
with one message and nothing written."""

import ast
import subprocess
import sys
import tomllib

import pytest

from _pip_target import install_into, run
from plugtron.cli import main
from plugtron.scaffold.kinds import KINDS


def _new(tmp_path, capsys, *args):
    rc = main(["plugins", "new", *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_renders_valid_python_and_toml(tmp_path, capsys, kind):
    dest = tmp_path / f"pkg_{kind}"
    rc, out, _ = _new(tmp_path, capsys, f"my_{kind}", "--kind", kind, "-o", str(dest))
    assert rc == 0 and str(dest) in out
    module, cls = f"plugtron_my_{kind}", f"My{kind.title().replace('_', '')}"
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    extra = [f"src/{module}/{name}" for name in KINDS[kind].extra]
    assert files == sorted(["README.md", "pyproject.toml", f"src/{module}/__init__.py", f"tests/test_my_{kind}.py", *extra])
    meta = tomllib.loads((dest / "pyproject.toml").read_text())
    assert meta["project"]["name"] == f"plugtron-my-{kind.replace('_', '-')}"
    target = f"{module}:add_parser" if kind == "command" else f"{module}:{cls}"
    assert meta["project"]["entry-points"] == {KINDS[kind].group: {f"my_{kind}": target},
                                               "plugtron.api": {meta["project"]["name"]: f"{module}:PLUGTRON_API"}}
    code = {p: ast.parse(p.read_text()) for p in dest.rglob("*.py")}  # all valid Python
    names = [n.name for n in code[dest / "src" / module / "__init__.py"].body if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    assert target.split(":")[1] in names
    api = [n for n in code[dest / "src" / module / "__init__.py"].body if isinstance(n, ast.Assign)
           and n.targets[0].id == "PLUGTRON_API"]
    assert len(api) == 1 and ast.literal_eval(api[0].value) == ">=1,<2"
    tests = code[dest / "tests" / f"test_my_{kind}.py"]
    assert any(isinstance(n, ast.FunctionDef) and n.name.startswith("test_") for n in tests.body)
    assert "$" not in "".join(p.read_text() for p in dest.rglob("*") if p.is_file())


@pytest.mark.parametrize("args, expected", [
    (["My-Plugin"], "NAME 'My-Plugin': expected a lowercase Python identifier"),
    (["import"], "NAME 'import': expected a lowercase Python identifier"),
    (["manual_gc"], "NAME 'manual_gc': already registered in entry-point group 'plugtron.plugins' by plugtron"),
], ids=["not-an-identifier", "keyword", "taken"])
def test_a_bad_name_is_one_error_and_nothing_is_written(tmp_path, capsys, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    rc, out, err = _new(tmp_path, capsys, *args)
    assert rc == 2 and err.startswith(f"plugtron: error: {expected}") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_never_overwritten(tmp_path, capsys):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    rc, _, err = _new(tmp_path, capsys, "fresh_name", "-o", str(dest))
    assert rc == 2 and f"{dest}: already exists; nothing was written" in err
    assert [p.name for p in dest.iterdir()] == ["keep.txt"] and (dest / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no staging directory left behind


def test_plugins_new_does_not_import_torch(tmp_path):
    code = ("import sys\nfrom plugtron.cli import main\nrc = main(['plugins', 'new', 'lean'])\n"
            "assert rc == 0 and 'torch' not in sys.modules, (rc, 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "plugtron-lean" / "pyproject.toml").is_file()


def test_the_plugin_package_installs_passes_its_own_tests_and_is_listed(tmp_path, capsys):
    rc, _, _ = _new(tmp_path, capsys, "step_count", "-o", str(tmp_path / "plugtron-step-count"))
    assert rc == 0
    install_into(tmp_path / "site", tmp_path / "plugtron-step-count")
    tests = run(["-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path / "site", cwd=tmp_path / "plugtron-step-count")
    assert tests.returncode == 0 and "2 passed" in tests.stdout, tests.stdout[-4000:] + tests.stderr[-2000:]
    listed = run(["-m", "plugtron", "plugins", "list"], tmp_path / "site", timeout=120)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("step_count "))
    assert "plugtron-step-count 0.1.0" in row and "collect_metrics, on_load, on_save, on_step" in row


@pytest.mark.slow
def test_the_catalog_kinds_install_and_pass_their_own_tests(tmp_path, capsys):
    """Their own tests: the code itself and the installed entry point. Using them in a run
    (``model.provider: NAME``, ...) is the test of each kind's registry."""
    dirs = []
    for kind in ("provider", "optimizer", "data_format", "command"):
        dirs.append(tmp_path / kind)
        assert _new(tmp_path, capsys, f"new_{kind}", "--kind", kind, "-o", str(dirs[-1]))[0] == 0
    install_into(tmp_path / "site", *dirs)
    tests = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", *[str(d / "tests") for d in dirs]], tmp_path / "site",
                cwd=tmp_path)
    assert tests.returncode == 0 and "8 passed" in tests.stdout, tests.stdout[-4000:] + tests.stderr[-2000:]
