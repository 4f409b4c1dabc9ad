"""The plugin API's guarantees (issue 9): call order and wrappers, plugin states that a checkpoint
can hold, configure_model conflicts, the same static checks for train / config show / plugins
list, documented signatures that work, rank helpers, hook tracing, --traceback, plugins show."""

import dataclasses
import os
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

from plugtron.config import ConfigContainer, PluginSettings
from plugtron.errors import ConfigError, PluginError
from plugtron.hookspecs import hookimpl
from plugtron.plugin_manager import PluginManager

from fake_plugins import FirstOnLoad
from test_plugins import EPS, NO_DEFAULT_PLUGINS, NO_GUARD, cfg_with, ep, metrics

ROOT = Path(__file__).resolve().parents[1]


# ---- defect 2: order and wrappers ------------------------------------------------------------------
class Plain:
    def __init__(self, log, tag):
        self.log, self.tag = log, tag

    def on_load(self, state, checkpoint_dir, plugin_state):
        self.log.append(self.tag)

    def on_exception(self, state, exc):
        self.log.append(self.tag)

    def on_step(self, state, metrics):
        self.log.append(self.tag)


def test_per_plugin_hooks_call_in_pluggys_order_with_tryfirst():
    log = []
    pm = PluginManager(EPS)
    pm.register("first", FirstOnLoad(log))
    pm.register("a", Plain(log, "a"))
    pm.register("b", Plain(log, "b"))
    hooks = pm.load(ConfigContainer(logger=NO_DEFAULT_PLUGINS))
    hooks.on_step(None, metrics())
    pluggy_order = list(log)
    assert pluggy_order == ["first", "b", "a"]  # tryfirst, then last registered first
    for call in (lambda: hooks.on_load(None, "/c", {}), lambda: hooks.on_exception(None, ValueError())):
        log.clear()
        call()
        assert log == pluggy_order


def test_a_wrapper_on_a_per_plugin_hook_is_a_load_error():
    with pytest.raises(PluginError, match=r"plugin 'wraps' \(.*\): on_save may not be a wrapper"):
        PluginManager([ep("wraps", "WrapsOnSave")]).load(cfg_with("wraps"))


def test_wrappers_are_honoured_on_pluggy_hooks():
    log = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def on_step(self, state, metrics):
            log.append("before")
            result = yield
            log.append("after")
            return result

    class OldWrapper:
        @hookimpl(hookwrapper=True)
        def on_step(self, state, metrics):
            log.append("old-before")
            yield
            log.append("old-after")

    pm = PluginManager(EPS)
    pm.register("plain", Plain(log, "plain"))
    pm.register("wrapper", Wrapper())
    pm.register("old", OldWrapper())
    pm.load(ConfigContainer(logger=NO_DEFAULT_PLUGINS)).on_step(None, metrics())
    assert log == ["old-before", "before", "plain", "after", "old-after"]


# ---- defect 3: configure_model conflicts -----------------------------------------------------------
@dataclasses.dataclass
class Provider:
    hidden_dropout: float = 0.1
    num_layers: int = 2


class Sets:
    def __init__(self, value):
        self.value = value

    def configure_model(self, config, provider):
        provider.hidden_dropout = self.value


def _configure(config, *plugins):
    pm = PluginManager(EPS)
    for i, p in enumerate(plugins):
        pm.register(f"p{i}", p)
    provider = Provider()
    pm.load(config).configure_model(config, provider)
    return provider


def test_two_plugins_setting_one_field_differently_is_an_error():
    with pytest.raises(PluginError) as info:
        _configure(ConfigContainer(logger=NO_DEFAULT_PLUGINS), Sets(0.0), Sets(0.3))
    assert "model.hidden_dropout: plugin 'p1' sets it to 0.3 and plugin 'p0' to 0.0" in str(info.value)
    assert _configure(ConfigContainer(logger=NO_DEFAULT_PLUGINS), Sets(0.0), Sets(0.0)).hidden_dropout == 0.0  # agreeing is fine


def test_a_plugin_changing_a_user_set_field_is_an_error_naming_where():
    from plugtron.config import load_config

    cfg = load_config(None, ["model.hidden_dropout=0.05", "logger.metrics_file=false", "logger.log_throughput=false", "logger.run_summary=false"])  # EPS has neither default plugin
    assert cfg.is_user_set("model.hidden_dropout") == "command line"
    assert cfg.is_user_set("model.num_layers") is None
    with pytest.raises(PluginError, match=r"model.hidden_dropout: plugin 'p0' changes it from 0.1 to 0.0, but it was set .* in command line"):
        _configure(cfg, Sets(0.0))

    class FillsOnlyUnset:
        def configure_model(self, config, provider):
            if not config.is_user_set("model.hidden_dropout"):
                provider.hidden_dropout = 0.0

    assert _configure(cfg, FillsOnlyUnset()).hidden_dropout == 0.1


class SetsBucket:
    """Changes the DDP and optimizer configs, as comm_overlap does."""

    def __init__(self, bucket, overlap=None):
        self.bucket, self.overlap = bucket, overlap

    def configure_model(self, config, provider):
        config.ddp.bucket_size = self.bucket
        if self.overlap is not None:
            config.optimizer.overlap_param_gather = self.overlap


def test_ddp_and_optimizer_changes_are_checked_like_the_model():
    from plugtron.config import load_config

    with pytest.raises(PluginError) as info:
        _configure(ConfigContainer(logger=NO_DEFAULT_PLUGINS), SetsBucket(1000), SetsBucket(2000))
    assert "ddp.bucket_size: plugin 'p1' sets it to 2000 and plugin 'p0' to 1000" in str(info.value)
    cfg = load_config(None, ["optimizer.overlap_param_gather=false", "logger.metrics_file=false",
                             "logger.log_throughput=false", "logger.run_summary=false"])
    with pytest.raises(PluginError, match=r"optimizer.overlap_param_gather: plugin 'p0' changes it from False to True, "
                                          r"but it was set .* in command line"):
        _configure(cfg, SetsBucket(1000, overlap=True))
    assert _configure(ConfigContainer(logger=NO_DEFAULT_PLUGINS), SetsBucket(1000), SetsBucket(1000)) is not None


def test_yaml_settings_are_user_set(tmp_path):
    from plugtron.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("model:\n  hidden_dropout: 0.2\n")
    assert load_config(str(path)).is_user_set("model.hidden_dropout") == str(path)


# ---- defect 4: the same checks everywhere -----------------------------------------------------------
def test_options_without_settings_or_for_a_disabled_plugin_are_errors():
    with pytest.raises(ConfigError, match="plugins.nosettings.options: plugin 'nosettings' declares no Settings"):
        PluginManager([ep("nosettings", "NoSettings")]).load(cfg_with("nosettings", nosettings={"x": 1}))
    cfg = ConfigContainer(logger=NO_DEFAULT_PLUGINS, plugins={"settings": PluginSettings(enabled=False, options={"every": 2})})
    with pytest.raises(ConfigError, match="plugins.settings.options: given, but plugin 'settings' is not enabled"):
        PluginManager(EPS).load(cfg)


def test_config_problems_is_called_before_anything_is_built():
    from plugtron.config import TrainingConfig

    pm = PluginManager([ep("checks", "ChecksConfig")])
    cfg = cfg_with("checks")
    cfg.train = TrainingConfig(train_iters=5000, check_for_nan_in_loss_and_grad=False)  # only the plugin under test
    with pytest.raises(ConfigError, match="train.train_iters: checks_config supports at most 1000 iterations, got 5000"):
        pm.load(cfg)
    assert pm.loaded == {}


@pytest.mark.parametrize("overrides,expected", [
    (["plugins.not_there.enabled=true"], "plugin 'not_there' is enabled by the config but not installed"),
    (["train.exit_signal_handler=true", "train.exit_signal=FOO"], "train.exit_signal: expected one of 'SIGTERM'"),
    (["plugins.manual_gc.options.every=2"], "plugins.manual_gc.options: given, but plugin 'manual_gc' is not enabled"),
])
def test_config_show_and_plugins_list_refuse_what_train_refuses(overrides, expected, capsys):
    from plugtron import cli

    messages = []
    for command in (["train"], ["config", "show"], ["plugins", "list"]):  # train fails before building anything
        assert cli.main([*command, *overrides]) == 2, command
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, (command, err)
        messages.append(err)
    assert messages[0] == messages[1] == messages[2]


def test_plugins_list_refuses_a_hook_typo_and_marks_blocked(monkeypatch, capsys):
    from plugtron import cli

    only_plugins(monkeypatch, [ep("typo", "DecoratedTypo"), ep("recorder", "Recorder"), EPS[-1]])  # EPS[-1]: nan_guard, on by default
    assert cli.main(["plugins", "list", "plugins.typo.enabled=true", "logger.metrics_file=false", "logger.log_throughput=false", "logger.run_summary=false"]) == 2
    assert "plugin 'typo': 'on_stepp' is not a plugtron hook" in capsys.readouterr().err
    monkeypatch.setenv("PLUGTRON_BLOCK_PLUGINS", "recorder")
    assert cli.main(["plugins", "list", "logger.metrics_file=false", "logger.log_throughput=false", "logger.run_summary=false"]) == 0
    assert re.search(r"recorder .* blocked ", capsys.readouterr().out)


# ---- defect 6: documented signatures work ---------------------------------------------------------------
def _documented_state_calls():
    from plugtron import hookspecs

    texts = [hookspecs.__doc__] + [getattr(hookspecs, n).__doc__ or "" for n in dir(hookspecs)]
    docs = ROOT / "docs" / "plugins.md"
    if docs.exists():
        texts.append(docs.read_text())
    return sorted(set(re.findall(r"state\.(request_stop\([^()]*\))", "\n".join(texts))))


def test_every_documented_state_call_runs():
    from plugtron.testing import fake_state

    calls = _documented_state_calls()
    assert calls, "the docs show state.request_stop(...)"
    class Placeholders(dict):  # a name the docs use as an argument (``reason``) stands for a string
        def __missing__(self, key):
            return key

    for call in calls:
        state = fake_state()
        eval("state." + call, {}, Placeholders(state=state))  # noqa: S307 - our own docs
        assert state.should_stop and state.stop_reason, call


# ---- defect 5: the benchmark's plugins --------------------------------------------------------------
def test_overhead_benchmark_registers_only_builtins():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import hook_overhead
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    available = {"manual_gc": metadata.EntryPoint("manual_gc", "plugtron.plugins.manual_gc:ManualGC", "plugtron.plugins"),
                 "stopper": ep("stopper", "Raises")}
    assert hook_overhead.builtin_plugins(available) == ["manual_gc"]


# ---- rank helpers, tracing, --traceback, plugins show ---------------------------------------------------
def test_rank_helpers_on_the_state():
    from plugtron.testing import fake_state

    assert fake_state().is_rank0 and fake_state().is_last_stage and fake_state().dp_size == 1
    s = fake_state(rank=3, dp_rank=1, dp_size=2, is_last_stage=False)
    assert (s.is_rank0, s.is_last_stage, s.dp_rank, s.dp_size) == (False, False, 1, 2)
    from plugtron.training.state import TrainState

    assert TrainState(config=None).is_rank0  # no process group: a single process is rank 0


def test_hook_tracing_logs_each_call_with_plugins_in_order(monkeypatch, caplog):
    monkeypatch.setenv("PLUGTRON_TRACE_HOOKS", "1")
    log = []
    pm = PluginManager(EPS)
    pm.register("a", Plain(log, "a"))
    pm.register("b", Plain(log, "b"))
    hooks = pm.load(ConfigContainer(logger=NO_DEFAULT_PLUGINS, train=NO_GUARD))
    with caplog.at_level("INFO", logger="plugtron.hooks"):
        hooks.on_step(type("S", (), {"iteration": 7})(), metrics(7))
        hooks.on_train_start(None)
    lines = [r.getMessage() for r in caplog.records if r.name == "plugtron.hooks"]
    assert re.fullmatch(r"hook on_step@7: b, a in \d+\.\d{3} ms", lines[0]), lines
    assert re.fullmatch(r"hook on_train_start: \(no plugin\) in \d+\.\d{3} ms", lines[1]), lines
    monkeypatch.setenv("RANK", "1")
    assert PluginManager(EPS).load(ConfigContainer(logger=NO_DEFAULT_PLUGINS)).observers == []  # rank 0 only, unless "all"
    monkeypatch.setenv("PLUGTRON_TRACE_HOOKS", "all")
    assert len(PluginManager(EPS).load(ConfigContainer(logger=NO_DEFAULT_PLUGINS)).observers) == 1


def test_trace_hooks_flag_sets_the_variable_for_this_process_and_its_children(monkeypatch, capsys):
    from plugtron import cli

    monkeypatch.setenv("PLUGTRON_TRACE_HOOKS", "")  # restored after the test
    assert cli.main(["--trace-hooks=all", "plugins", "list"]) == 0
    assert os.environ["PLUGTRON_TRACE_HOOKS"] == "all"


def test_traceback_flag_and_env(monkeypatch, capsys):
    from plugtron import cli

    assert cli.main(["plugins", "show", "not_there"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plugtron: error: plugin 'not_there' is not installed") and "Traceback" not in err
    for argv, env in ((["--traceback", "plugins", "show", "not_there"], None), (["plugins", "show", "not_there"], "1")):
        if env:
            monkeypatch.setenv("PLUGTRON_TRACEBACK", env)
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "in show_plugin" in err
        assert err.rstrip().endswith("installed: ddp_parity, manual_gc, preemption") or "plugtron: error:" in err


def only_plugins(monkeypatch, eps):
    """These plugins instead of the installed ones (every other kind, the commands too, as installed)."""
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: eps if group == "plugtron.plugins" else real(group=group))


def test_plugins_show(monkeypatch, capsys):
    from plugtron import cli

    only_plugins(monkeypatch, [ep("settings", "WithSettings")])
    assert cli.main(["plugins", "show", "settings", "plugins.settings.enabled=true"]) == 0
    out = capsys.readouterr().out
    assert "enabled by:       plugins.settings.enabled" in out and "enabled now:      yes" in out
    assert "every: int = 1" in out and "tag: str = 'x'" in out and "hooks:            on_train_start" in out
    assert cli.main(["plugins", "show", "settingz"]) == 2
    assert "(did you mean 'settings'?)" in capsys.readouterr().err


def test_plugins_list_and_show_stay_torch_free_with_the_checks():
    import subprocess

    code = ("import sys\nfrom plugtron.cli import main\n"
            "main(['plugins', 'list', 'train.exit_signal_handler=true', 'train.check_weight_hash_across_dp_replicas_interval=5'])\n"
            "main(['plugins', 'show', 'preemption'])\n"
            "print('torch imported:', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "preemption" in out.stdout and out.stdout.rstrip().endswith("torch imported: False")
