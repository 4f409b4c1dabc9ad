"""``plugtron migrate callback``: NeMo 2.0-style Lightning callbacks (tests/migrate_callbacks/) become
plugin packages that are valid Python, install (a wheel into a temporary target), are listed, and run
in a tiny training where the code of each mapped hook runs; what has no equivalent is reported with
file:line and commented out; bad input is one error and writes nothing."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from _pip_target import install_into, run
from plugtron.cli import main
from plugtron.migrate.callback_table import HOOKS
from plugtron.testing import resume, run_training

CALLBACKS = Path(__file__).resolve().parent / "migrate_callbacks"
PACKAGES = {"gc": ("gc_callback.py", ["--name", "gc"]), "timing": ("timing_callback.py", ["--name", "timing"]),
            "loss_monitor": ("monitor_callbacks.py", ["--class", "LossMonitor"])}


def _line(file: str, snippet: str) -> int:
    return next(i for i, ln in enumerate((CALLBACKS / file).read_text().splitlines(), 1) if snippet in ln)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The three callbacks migrated into packages and installed into one target (``site``):
    (the directory of both, {name: exit status})."""
    out = tmp_path_factory.mktemp("migrated")
    status = {}
    for name, (file, extra) in PACKAGES.items():
        status[name] = main(["migrate", "callback", str(CALLBACKS / file), "-o", str(out / name), "--report",
                             str(out / f"{name}.md"), *extra])
    install_into(out / "site", *[out / name for name in PACKAGES])
    return out, status


def test_reports_exit_status_and_valid_python(installed):
    out, results = installed
    for name in PACKAGES:
        module = out / name / "src" / f"plugtron_{name}" / "__init__.py"
        ast.parse(module.read_text())  # valid Python (the migration also compiles it before writing)
        assert (out / name / "README.md").read_text().startswith("# plugtron migrate callback: ")
    assert results["gc"] == 0 and results["timing"] == 0  # everything mapped
    assert results["loss_monitor"] == 1  # written, with constructs that have no equivalent
    assert (out / "gc.md").read_text() == (out / "gc" / "README.md").read_text()


def test_what_has_no_equivalent_is_reported_with_its_line_and_commented_out(installed):
    out, _ = installed
    report = (out / "loss_monitor" / "README.md").read_text()
    code = (out / "loss_monitor" / "src" / "plugtron_loss_monitor" / "__init__.py").read_text()
    for snippet, reason in [('self.log("monitored_loss"', "Lightning logging"), ('pl_module.log("lr"', "Lightning logging"),
                            ("trainer.strategy.is_global_zero", "parallel_state"),
                            ("pl_module.global_rank == 0", "the LightningModule has no plugtron equivalent"),
                            ("trainer.callback_metrics", "on_log(state, log)"),
                            ("def on_train_epoch_end", "not epochs")]:
        line = _line("monitor_callbacks.py", snippet)
        assert any(f"monitor_callbacks.py:{line}: " in r and reason in r for r in report.splitlines()), (snippet, report)
        if not snippet.startswith("def "):
            assert f"# NOT MIGRATED (monitor_callbacks.py:{line}): " in code, (snippet, code)
    assert "## Not migrated (6)" in report
    assert "def _lightning_on_train_epoch_end(self, trainer, pl_module):" in code  # kept, never called
    assert "float(metrics.loss)" in code and 'state.request_stop("LossMonitor: trainer.should_stop = True")' in code
    assert "| `on_train_batch_end` | 16 | `on_step` |" in report


def test_the_migrated_plugins_are_listed(installed):
    out, _ = installed
    listed = run(["-m", "plugtron", "plugins", "list"], out / "site", timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "plugtron-gc 0.1.0" in rows["gc"] and "configure_model, on_eval, on_step, on_train_end" in rows["gc"]
    assert "on_load, on_save, on_step, on_step_start, on_train_end, on_train_start" in rows["timing"]
    assert "on_eval, on_step" in rows["loss_monitor"]


def test_gc_callback_runs_its_hooks_in_a_tiny_training(installed, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(installed[0] / "site"))
    result = run_training(["plugins.gc.options.gc_interval_train=2"], ["gc"])
    gc_plugin = result.plugins["gc"]
    assert gc_plugin.stage == "fit"  # setup -> configure_model
    assert gc_plugin.train_collections == 2  # on_train_batch_end -> on_step: steps 2 and 4 of 4
    assert gc_plugin.val_collections == len(result.eval["valid"]) >= 2  # on_validation_end -> on_eval
    import gc

    assert gc.isenabled()  # teardown -> on_train_end turned it back on


def test_timing_callback_state_survives_a_resume(installed, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(installed[0] / "site"))
    first = run_training([], ["timing"], checkpoint_dir=str(tmp_path / "ckpt"))
    timing = first.plugins["timing"]
    assert (timing.steps_timed, timing.max_steps, timing.started_at, timing.first_batch_idx) == (4, 4, 0, 0)
    assert timing.total_time > 0 and timing.summary.startswith("4 steps in ")  # @rank_zero_only on_train_end
    again = resume(first, [], ["timing"])  # state_dict -> on_save, load_state_dict -> on_load
    timing = again.plugins["timing"]
    assert (timing.steps_timed, timing.max_steps, timing.started_at, timing.first_batch_idx) == (6, 6, 4, 4)


def test_loss_monitor_sees_the_losses_and_stops_the_run(installed, monkeypatch):
    monkeypatch.syspath_prepend(str(installed[0] / "site"))
    result = run_training(["plugins.loss_monitor.options.patience=2"], ["loss_monitor"])
    monitor = result.plugins["loss_monitor"]
    assert monitor.losses == pytest.approx(result.losses) and len(result.losses) == 3  # should_stop after step 3
    assert monitor.evals == [it for it, _ in result.eval["valid"]]  # on_validation_epoch_end -> on_eval


@pytest.mark.parametrize("source, args, expected", [
    ("x = (\n", [], "t.py:1: not valid Python"),
    ("class A:\n    pass\n", [], "t.py: no Lightning Callback subclass found"),
    ("from lightning.pytorch import Callback\nclass A(Callback): pass\nclass B(A): pass\n", [],
     "t.py: 2 Callback subclasses: A (line 2), B (line 3); choose one with --class NAME"),
    ("from lightning.pytorch import Callback\nclass A(Callback): pass\n", ["--class", "C"],
     "t.py: --class C: no Lightning Callback subclass of that name; its Callback subclasses: A"),
    ("from lightning.pytorch import Callback\nclass ManualGCCallback(Callback): pass\n", [],
     "plugin name (--name) 'manual_gc': already registered in entry-point group 'plugtron.plugins' by plugtron"),
], ids=["not-python", "no-callback", "several", "unknown-class", "taken-name"])
def test_bad_input_is_one_error_and_nothing_is_written(tmp_path, capsys, monkeypatch, source, args, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text(source)
    rc = main(["migrate", "callback", "t.py", *args])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"plugtron: error: {err[len('plugtron: error: '):]}" and expected in err, err
    assert err.count("\n") == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["t.py"]


def test_an_existing_package_or_report_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "report.md").write_text("mine")
    src = str(CALLBACKS / "gc_callback.py")
    assert main(["migrate", "callback", src, "-o", str(tmp_path / "pkg")]) == 2
    assert main(["migrate", "callback", src, "-o", str(tmp_path / "new"), "--report", str(tmp_path / "report.md")]) == 2
    assert "already exists; nothing was written" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg", "report.md"] and not any((tmp_path / "pkg").iterdir())
    assert (tmp_path / "report.md").read_text() == "mine"


def test_migrate_callback_does_not_import_torch(tmp_path):
    code = ("import sys\nfrom plugtron.cli import main\n"
            f"rc = main(['migrate', 'callback', {str(CALLBACKS / 'gc_callback.py')!r}])\n"
            "assert rc == 0 and 'torch' not in sys.modules, (rc, 'torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "plugtron-garbage-collection" / "src" / "plugtron_garbage_collection" / "__init__.py").is_file()


def test_every_mapped_hook_is_a_plugtron_hook_and_every_role_is_known():
    from plugtron import hookspecs
    from plugtron.migrate.callback_table import ARGUMENTS

    for name, rule in HOOKS.items():
        assert callable(getattr(hookspecs, rule.plugtron, None)), name
        assert all(role in ARGUMENTS for role in rule.args), name


@pytest.mark.slow
def test_the_generated_package_passes_its_own_test(installed):
    out, _ = installed
    proc = run(["-m", "pytest", "-q", "-p", "no:cacheprovider"], out / "site", cwd=out / "timing")
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_code_shapes_survive_the_move_and_the_hooks_work_on_a_fake_state(tmp_path):
    from plugtron.migrate.callback import migrate_callback
    from plugtron.testing import fake_state

    m = migrate_callback(str(CALLBACKS / "edge_cases.py"))
    code = m.module
    for kept in ["    @staticmethod\n    def util(trainer: 'pl.Trainer'):",  # a Lightning annotation, never evaluated
                 "self.path = path  # où", "# first comment", "self.ended = state.iteration; self.more = 1",
                 "def inner(t=state.iteration):", "msg = f\"it {state.iteration} {'x'}\"",
                 "state_ = {\"a\": 1}\n        self.fit_state = state_\n        self.at = state.iteration  # ünï",
                 "def on_exception(self, exc):", "self.opt = state.optimizer"]:
        assert kept in code, kept
    namespace = {}
    exec(compile(code, "edge_cases", "exec"), namespace)  # imports only the standard library and typing_extensions
    cls = namespace["Edge"]
    plugin = cls(None, cls.Settings(tm=None))
    plugin.on_train_start(fake_state(0))  # on_fit_start, then on_train_start
    assert (plugin.fit_state, plugin.at, plugin.fresh) == ({"a": 1}, 0, True)
    plugin.on_step(fake_state(3))
    assert (plugin.vals, plugin.msg) == ([6, 6], "it 3 x")
    plugin.on_eval(fake_state(4), "valid")
    assert not hasattr(plugin, "tested")
    plugin.on_eval(fake_state(4, rank=1), "test")  # @rank_zero_only
    assert not hasattr(plugin, "tested")
    plugin.on_eval(fake_state(4), "test")
    assert plugin.tested and isinstance(cls.__dict__["util"], staticmethod)
    lines = [_line("edge_cases.py", s) for s in ["def __init__"] * 3 + ["trainer.limit_val_batches = 2",
                                                                        'self.log("bad"', "trainer.lightning_module",
                                                                        "self.rest = rest", "if outputs is None",
                                                                        "def on_save_checkpoint", "def on_custom"]]
    assert [f.line for f in m.not_migrated] == lines
