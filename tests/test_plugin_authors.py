"""What a plugin author meets (issue 28), with the early-stopping plugin of tests/plateau_plugin.py:
resume keeps the first run's options, the three commands check plugins alike, ``config_problems``
gets the validated ``Settings``, evaluation records carry plugins' keys and the stop, a stop's
unmet save is said, scripts need no ``__main__`` guard, and the smaller frictions of point 7."""

import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from plateau_plugin import Plateau

ROOT = Path(__file__).resolve().parents[1]
PLATEAU = metadata.EntryPoint("plateau", "plateau_plugin:Plateau", "plugtron.plugins")


@pytest.fixture
def plateau_installed(monkeypatch):
    """The plateau plugin installed next to the built-ins (an entry point, as pip would add it)."""
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points", lambda group=None, **kw: [*real(group=group, **kw), PLATEAU]
                        if group == "plugtron.plugins" else real(group=group, **kw))
    Plateau.checked.clear()


# ---- 1. resume keeps the first run's configuration ---------------------------------------------
def test_resume_keeps_the_first_runs_overrides_and_plugin_options(plateau_installed, plugtron_run):
    first = plugtron_run(["train.eval_interval=1", "plugins.plateau.options.patience=2"], ["plateau"])
    again = plugtron_run.resume(first, save=False)  # nothing repeated: same recipe, overrides, named plugins
    assert again.plugins["plateau"].settings.patience == 2
    assert [it for it, _ in again.eval["valid"]] == [5, 6]  # eval_interval=1 kept (TINY says 2)
    assert again.plugins["plateau"].best is not None and "on_load@4" in again.transcript
    changed = plugtron_run.resume(first, ["plugins.plateau.options.patience=3"])  # one key changed on top
    assert changed.plugins["plateau"].settings.patience == 3 and len(changed.eval["valid"]) == 2


# ---- 2 and 3. the same checks, config and Settings under plugins list, config show and train ----
CONFIGS = [
    [],
    ["train.eval_interval=200"],  # 3 x 200 > the tiny recipe's 300 iterations (the bare defaults say 1000)
    ["train.eval_interval=50"],
    ["train.eval_interval=null"],
    ["plugins.plateau.options.patience=x"],
    ["plugins.plateau.options.patiense=2"],
    ["plugins.plateau.patience=2"],
    ["plugins.plateau.options.patience=7", "train.eval_interval=50"],
]


class _ChecksPassed(Exception):
    pass


def _verdict(cli, capsys, argv):
    try:
        rc = cli.main(argv)
    except _ChecksPassed:  # train got past every check: it would start the process groups now
        rc = 0
    lines = capsys.readouterr().err.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("plugtron: error")), len(lines))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return rc, lines[start:end]  # the error message (warnings of a first torch import aside)


def test_plugins_list_config_show_and_train_agree(plateau_installed, monkeypatch, capsys, tmp_path):
    from plugtron import cli
    from plugtron.training import setup

    monkeypatch.chdir(tmp_path)

    def stop_here(cfg):
        raise _ChecksPassed()

    monkeypatch.setattr(setup, "init_distributed", stop_here)
    verdicts = []
    for extra in CONFIGS:
        args = ["plugins.plateau.enabled=true", *extra]
        seen = {cmd: _verdict(cli, capsys, [*cmd.split(), *args]) for cmd in ("plugins list", "config show", "train")}
        assert seen["plugins list"] == seen["config show"] == seen["train"], (extra, seen)
        verdicts.append(seen["train"])
    assert [rc for rc, _ in verdicts] == [0, 2, 0, 2, 2, 2, 2, 2]
    messages = "\n".join(line for _, lines in verdicts for line in lines)
    assert "plugtron: error: recipe 'tiny' + command line: 1 error" in messages  # one header, as train's
    assert "plugins.plateau.options.patience: 3 evaluations every 200 iterations cannot stop a run of train.train_iters=300" in messages
    assert "plugins.plateau.options.patience: expected int, got str 'x'" in messages  # the option's own path
    assert "plugins.plateau.options.patiense: unknown key (did you mean 'patience'?)" in messages
    assert "plugins.plateau.patience: unknown key (a plugin's options go under options: plugins.plateau.options.patience)" in messages
    assert "plugins.plateau.options.patience: 7 evaluations every 50 iterations" in messages
    # config_problems always got the validated Settings (defaults applied), never the raw dict
    assert Plateau.checked and all(isinstance(s, Plateau.Settings) for s, _ in Plateau.checked)
    assert {s.patience for s, _ in Plateau.checked} == {3, 7} and {s.min_delta for s, _ in Plateau.checked} == {0.0}
    assert {type(entry).__name__ for _, entry in Plateau.checked} == {"PluginSettings"}  # the same under every command


def test_plugins_show_prints_the_configured_option_values(plateau_installed, capsys):
    from plugtron import cli

    assert cli.main(["plugins", "show", "plateau", "plugins.plateau.enabled=true", "plugins.plateau.options.patience=7"]) == 0
    out = capsys.readouterr().out
    assert "patience: int = 7 (configured; default 3)" in out and "min_delta: float = 0.0 " in out


# ---- 5 and 6. evaluation records; a stop's save that cannot happen -----------------------------
def test_a_stop_decided_in_an_evaluation_is_in_its_record_and_an_unmet_save_is_said(plateau_installed, plugtron_run, caplog):
    result = plugtron_run(["train.eval_interval=1", "plugins.plateau.options.patience=1",
                           "plugins.plateau.options.min_delta=100"], ["plateau"], save=False)
    records = result.eval_records["valid"]
    assert [r["iteration"] for r in records] == [1, 2] and result.summary["iteration"] == 2
    assert records[0]["evals_without_improvement"] == 0 and "stop_reason" not in records[0]
    assert records[1]["evals_without_improvement"] == 1 and records[1]["best_loss"] == records[0]["loss"]
    assert records[1]["stop_reason"] == "plateau: no improvement in 1 evaluations"
    assert "collect_metrics:valid@2" in result.transcript and "on_eval_log:valid@2" in result.transcript
    assert result.stop == {"reason": "plateau: no improvement in 1 evaluations", "save_requested": True, "saved": False,
                           "note": "a save was requested, but nothing was saved: checkpoint.save is not set"}
    assert ("stopped at iteration 2: plateau: no improvement in 1 evaluations (a save was requested, but nothing "
            "was saved: checkpoint.save is not set)") in caplog.text


def test_the_metrics_file_holds_the_plugins_eval_keys(plateau_installed, plugtron_run):
    from plugtron.metrics_records import read_records

    result = plugtron_run(["train.eval_interval=2", "plugins.plateau.options.patience=1"], ["plateau"])
    valid = [r for r in read_records(Path(result.checkpoint_dir) / "metrics.jsonl") if r["kind"] == "valid"]
    assert [r["iteration"] for r in valid] == [2, 4] and all("evals_without_improvement" in r for r in valid)
    assert result.stop is None or result.stop["saved"]


# ---- 7. smaller frictions ------------------------------------------------------------------------
def test_a_dict_inside_the_plugin_list_is_refused():
    from plugtron.testing import run_training

    with pytest.raises(TypeError, match=r"plugins\[0\]: expected a plugin object or the name of an installed plugin, "
                                        r"got dict .*pass the dict itself as plugins="):
        run_training([], [{"plateau": object()}])


@pytest.mark.parametrize("doc", ["README.md", "docs/plugins.md"])
def test_the_documented_error_examples_are_real_output(doc, plateau_installed, capsys):
    from plugtron import cli

    examples = re.findall(r"```\n\$ (plugtron [^\n]+)\n(.*?)```", (ROOT / doc).read_text(), flags=re.S)
    assert examples
    for command, shown in examples:
        assert cli.main(shlex.split(command)[1:]) == 2
        assert capsys.readouterr().err == shown, command


# ---- 4. a plain script, no __main__ guard ------------------------------------------------------
@pytest.mark.slow
def test_run_training_from_a_script_without_a_main_guard(tmp_path):
    script = tmp_path / "try_it.py"
    script.write_text("from plugtron.testing import run_training\n"
                      f"r = run_training(['train.train_iters=2', 'train.eval_interval=null'], [], checkpoint_dir={str(tmp_path / 'ck')!r})\n"
                      "print('RAN', r.summary['iteration'])\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.count("RAN 2") == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tmp_path / "ck" / "latest_checkpointed_iteration.txt").exists() or any((tmp_path / "ck").glob("iter_*"))


def test_plugins_list_sees_each_recipes_own_sections():
    """``plugins list`` reads the recipe's torch-free sections without Megatron: they are the ones
    the recipe builds (a NullTokenizer's size, derived from the model, aside)."""
    from plugtron.config.container import resolve_types
    from plugtron.config.converter import unstructure
    from plugtron.recipes import get_recipe, names
    from plugtron.recipes.registry import plain_data

    resolve_types()
    for name in names():
        full, plain = unstructure(get_recipe(name)()), plain_data(name)
        if plain.get("tokenizer", {}).get("vocab_size", 0) is None:
            plain["tokenizer"]["vocab_size"] = full["tokenizer"]["vocab_size"]
        assert plain == {k: full[k] for k in plain}, name
        assert not {"model", "optimizer", "ddp", "mixed_precision"} & set(plain), name
    assert plain_data("tiny")["train"]["eval_interval"] == 100 and plain_data("none") == {}
