"""Every built-in plugin can be switched on either way the docs give: its own toggle field (a
section present, a flag, a value) or ``plugins.<name>.enabled=true``, which gives the toggle its "on"
value (a section's defaults, ``true``) or, where only the user can give one (a directory, a project,
an interval), one config error naming the field to set. And ``benchmarks/hook_overhead.py``, which
enables every built-in by name, runs in each of its modes."""

import os
import subprocess
import sys

import pytest

from plugtron.config import builtin_toggles, load_config
from plugtron.config.converter import unstructure
from plugtron.errors import PlugtronError
from plugtron.plugin_manager import PluginManager

MOE = ["model.num_moe_experts=4", "model.moe_router_topk=2", "model.add_bias_linear=false"]
NEEDS_A_VALUE = {"ddp_parity", "tensorboard", "wandb", "mlflow"}  # a directory, project, experiment, interval
SECTIONS = {"comm_overlap", "moe_token_drop", "deepep", "peft", "compile"}
TOGGLES = dict((name, path) for path, name in builtin_toggles())


def _outcome(overrides):
    """The validated config (as plain data, without the plugins section) and the loaded plugins, or
    the one error message."""
    try:
        cfg = load_config(None, MOE + overrides)
        cfg.validate()
        pm = PluginManager()
        pm.load(cfg)
        data = unstructure(cfg)
        data.pop("plugins")
        return data, sorted(pm.loaded)
    except PlugtronError as err:
        return str(err).replace("plugins.", "").split("\n")[-1], None


def test_every_builtin_is_in_the_table():
    assert set(TOGGLES) >= NEEDS_A_VALUE | SECTIONS and len(TOGGLES) >= 20


@pytest.mark.parametrize("name", sorted(TOGGLES))
def test_enabled_by_name_equals_its_own_toggle(name):
    path = TOGGLES[name]
    by_name = _outcome([f"plugins.{name}.enabled=true"])
    if name in NEEDS_A_VALUE:
        assert by_name[1] is None and f"{name}.enabled: the built-in {name!r} is switched on by {path}" in by_name[0]
        assert f"set {path} instead" in by_name[0]
        return
    by_toggle = _outcome([f"{path}={{}}" if name in SECTIONS else f"{path}=true"])
    assert by_name == by_toggle
    if by_name[1] is not None:
        assert name in by_name[1]


def test_section_defaults_fill_in_and_the_users_fields_stay():
    cfg = load_config(None, MOE + ["plugins.moe_token_drop.enabled=true", "model.moe_token_dispatcher_type=alltoall"])
    cfg.validate()
    assert cfg.moe_token_drop.moe_expert_capacity_factor == 1.0 and cfg.moe_token_drop.moe_pad_expert_input_to_capacity
    given = load_config(None, MOE + ["plugins.moe_token_drop.enabled=true", "moe_token_drop.moe_expert_capacity_factor=1.5"])
    given.validate()
    assert given.moe_token_drop.moe_expert_capacity_factor == 1.5  # a section given is never replaced
    off = load_config(None, MOE + ["plugins.deepep.enabled=false"])
    off.validate()
    assert off.deepep is None


def test_hook_overhead_benchmark_runs_in_every_mode():
    bench = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "hook_overhead.py")
    code = (f"import runpy, sys\nmod = runpy.run_path({bench!r})\n"
            "for mode in ([], ['--loggers'], ['--profile', '2']):\n"
            "    mod['main'](['--smoke', *mode])\n    print('MODE DONE', mode, flush=True)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("MODE DONE") == 3
    registered = [ln for ln in proc.stdout.splitlines() if ln.startswith("plugins registered:")]
    assert len(registered) == 2 and "deepep" in registered[0] and "moe_token_drop" in registered[0]
    assert "ratio plugtron/bare" in proc.stdout and "cProfile" in proc.stdout
