"""Plugin discovery, enabling, validation and error attribution, with fake entry points."""

import gc
from importlib import metadata

import pytest

from plugtron.config import ConfigContainer, LoggerConfig, PluginSettings, TrainingConfig
from plugtron.errors import ConfigError, PluginError
from plugtron.plugin_manager import BLOCK_ENV, PluginManager, discover, hook_names
from plugtron.training.metrics import StepMetrics

# metrics_file, throughput and run_summary are on by default; these tests load fake entry points that do not provide them
NO_DEFAULT_PLUGINS = LoggerConfig(metrics_file=False, log_throughput=False, run_summary=False)


def ep(name, target):
    return metadata.EntryPoint(name=name, value=f"fake_plugins:{target}", group="plugtron.plugins")


EPS = [ep("recorder", "Recorder"), ep("typo", "DecoratedTypo"), ep("typo2", "UndecoratedTypo"),
       ep("wrongarg", "WrongArgument"), ep("raises", "Raises"), ep("settings", "WithSettings"),
       ep("badinit", "FailsToInit"), metadata.EntryPoint("manual_gc", "plugtron.plugins.manual_gc:ManualGC", "plugtron.plugins"),
       metadata.EntryPoint("nan_guard", "plugtron.plugins.nan_guard:NanGuard", "plugtron.plugins")]
NO_GUARD = TrainingConfig(check_for_nan_in_loss_and_grad=False)  # the default-on built-in, off where a test counts plugins


def cfg_with(*names, **options):
    plugins = {n: PluginSettings(enabled=True, options=options.get(n, {})) for n in names}
    return ConfigContainer(logger=NO_DEFAULT_PLUGINS, plugins=plugins, train=NO_GUARD)


def metrics(i=1):
    return StepMetrics(iteration=i, loss=None, grad_norm=1.0, lr=0.1, skipped=False)


def test_builtin_plugins_are_registered_by_entry_point():
    found = discover()
    assert "manual_gc" in found
    assert found["manual_gc"].value == "plugtron.plugins.manual_gc:ManualGC"


def test_only_enabled_plugins_are_loaded():
    pm = PluginManager(EPS)
    hooks = pm.load(cfg_with("recorder"))
    assert list(pm.loaded) == ["recorder"]
    hooks.on_train_start(None)
    hooks.on_step(None, metrics())
    assert pm.loaded["recorder"].calls[0] == "on_train_start"
    assert pm.loaded["recorder"].calls[1][0] == "on_step"


def test_builtin_toggle_enables_plugin():
    pm = PluginManager(EPS)
    pm.load(ConfigContainer(logger=NO_DEFAULT_PLUGINS, train=TrainingConfig(manual_gc=True)))
    assert list(pm.loaded) == ["manual_gc", "nan_guard"]  # nan_guard: on by default


def test_unknown_plugin_lists_installed():
    with pytest.raises(PluginError) as info:
        PluginManager(EPS).load(cfg_with("recordr"))
    msg = str(info.value)
    assert "plugin 'recordr' is enabled by the config but not installed (did you mean 'recorder'?)" in msg
    assert "installed: badinit, manual_gc, nan_guard, raises, recorder, settings, typo, typo2, wrongarg" in msg


def test_blocked_plugin_is_an_error(monkeypatch):
    monkeypatch.setenv(BLOCK_ENV, "recorder")
    with pytest.raises(PluginError, match=f"plugin 'recorder' is enabled by the config but blocked by {BLOCK_ENV}"):
        PluginManager(EPS).load(cfg_with("recorder"))


@pytest.mark.parametrize("name,expected", [
    ("typo", "'on_stepp' is not a plugtron hook (did you mean 'on_step'?)"),
    ("typo2", "'on_train_strat' is not a plugtron hook (did you mean 'on_train_start'?)"),
    ("wrongarg", "Argument(s) {'metric'} are declared in the hookimpl but can not be found in the hookspec"),
])
def test_hook_typos_are_load_errors(name, expected):
    with pytest.raises(PluginError) as info:
        PluginManager(EPS).load(cfg_with(name))
    assert f"plugin {name!r}" in str(info.value)
    assert expected in str(info.value)


def test_raising_plugin_is_named():
    pm = PluginManager(EPS)
    hooks = pm.load(cfg_with("recorder", "raises"))
    with pytest.raises(PluginError) as info:
        hooks.on_step(None, metrics())
    assert "plugin 'raises'" in str(info.value)
    assert "raised in on_step: RuntimeError: boom at step" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_failing_init_is_named():
    with pytest.raises(PluginError, match="plugin 'badinit' .* failed to initialize: ValueError: needs a GPU"):
        PluginManager(EPS).load(cfg_with("badinit"))


def test_plugin_settings_are_structured_strictly():
    pm = PluginManager(EPS)
    pm.load(cfg_with("settings", settings={"every": 5}))
    assert pm.loaded["settings"].settings.every == 5
    with pytest.raises(ConfigError) as info:
        PluginManager(EPS).load(cfg_with("settings", settings={"evry": 5, "tag": 3}))
    assert "tag: expected str, got int 3" in str(info.value)
    assert "evry: unknown key (did you mean 'every'?)" in str(info.value)


def test_on_save_and_on_load_use_per_plugin_slots():
    pm = PluginManager(EPS)
    hooks = pm.load(cfg_with("recorder", "settings"))
    saved = hooks.on_save(None, "/ckpt")
    assert saved == {"recorder": {"seen": 0}}  # 'settings' has no on_save: no slot, no cost
    hooks.on_load(None, "/ckpt", saved)
    assert pm.loaded["recorder"].calls[-1] == ("on_load", {"seen": 0})


def test_on_exception_never_raises():
    class Bad:
        def on_exception(self, state, exc):
            raise RuntimeError("secondary")

    pm = PluginManager(EPS)
    pm.register("bad", Bad())
    failures = pm.load(ConfigContainer(logger=NO_DEFAULT_PLUGINS)).on_exception(None, ValueError("primary"))
    assert failures and failures[0][0] == "bad" and "secondary" in failures[0][1]


def test_manual_gc_plugin_restores_state():
    from plugtron.plugins.manual_gc import ManualGC

    cfg = ConfigContainer(logger=NO_DEFAULT_PLUGINS, train=TrainingConfig(manual_gc=True, manual_gc_interval=2, manual_gc_eval=True))
    plugin = ManualGC(cfg)
    assert gc.isenabled()
    plugin.on_train_start(None)
    assert not gc.isenabled() and plugin.collections == 1
    for i in range(1, 5):
        plugin.on_step(None, metrics(i))
    assert plugin.collections == 3  # start + steps 2 and 4
    plugin.on_eval_start(None, "valid")
    plugin.on_eval(None, "valid", {})
    assert plugin.collections == 5
    plugin.on_train_end(None)
    assert gc.isenabled()


def test_every_hook_is_documented():
    from plugtron import hookspecs

    for name in hook_names():
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.split()) >= 10, name
        assert "rank" in doc.lower() or "every" in doc.lower(), f"{name}: say on which ranks it fires"
        assert name in hookspecs.__doc__, f"{name} missing from the loop pseudocode"


def _builtins():
    from plugtron.config import builtin_toggles

    toggles = {name: path for path, name in builtin_toggles()}
    found = {n: e for n, e in discover().items() if e.value.startswith("plugtron.plugins.")}
    return [(name, found[name], toggles.get(name)) for name in sorted(found)]


@pytest.mark.parametrize("name,entry,toggle", _builtins(), ids=[b[0] for b in _builtins()])
def test_builtin_plugin_conformance(name, entry, toggle, monkeypatch):
    """Every built-in plugin: switched by a config field, documented (what it replaces, its toggle,
    why), loads through its entry point with the toggle on, and its on_exception never raises."""
    import importlib

    from plugtron.config import load_config
    from plugtron.plugins import profiling_window

    if name in GPU_ONLY:  # they refuse to load without CUDA (tested in their own files): a GPU is faked
        monkeypatch.setattr(profiling_window, "cuda_available", lambda: True)

    assert toggle, f"{name}: no config field switches it on (metadata={{'plugin': {name!r}}})"
    module = importlib.import_module(entry.value.split(":")[0])
    doc = module.__doc__ or ""
    assert "former NeMo" in doc and f"Toggle: ``{toggle}``" in doc, f"{name}: docstring must name the NeMo callback and toggle"
    cfg = load_config(None, [f"{toggle}={TOGGLE_VALUES.get(toggle.rsplit('.', 1)[-1], 'true')}"])
    pm = PluginManager()
    hooks = pm.load(cfg)
    assert name in pm.loaded
    assert hooks.on_exception(None, RuntimeError("boom")) == []


GPU_ONLY = {"nsys_profiler", "memory_profiler"}

# Toggles that are not booleans: the value that switches each on.
TOGGLE_VALUES = {"check_weight_hash_across_dp_replicas_interval": 1, "comm_overlap": "{}", "moe_token_drop": "{}", "deepep": "{}", "peft": "{}",
                 "compile": "{}",
                 "tensorboard_dir": "/tmp/plugtron-conformance-tb", "wandb_project": "conformance",
                 "mlflow_experiment": "conformance"}


def test_the_nan_guard_is_on_by_default():
    pm = PluginManager(EPS)
    pm.load(ConfigContainer(logger=NO_DEFAULT_PLUGINS))
    assert list(pm.loaded) == ["nan_guard"]


def test_a_builtin_toggle_without_its_plugin_names_the_field():
    pm = PluginManager([ep("recorder", "Recorder")])
    with pytest.raises(PluginError, match="train.manual_gc: switches on the built-in plugin 'manual_gc', which this plugtron installation does not provide"):
        pm.load(ConfigContainer(logger=NO_DEFAULT_PLUGINS, train=TrainingConfig(manual_gc=True)))


def test_hookspecs_pseudocode_follows_the_trainer():
    """The pseudocode in hookspecs names every public Trainer method, names no method that does not
    exist, and lists the steps of ``Trainer.train`` in the order the code calls them."""
    import inspect
    import re

    from plugtron import hookspecs
    from plugtron.training.trainer import Trainer

    doc = hookspecs.__doc__
    public = {n for n, f in inspect.getmembers(Trainer, inspect.isfunction) if not n.startswith("_")}
    named = set(re.findall(r"Trainer\.(\w+)\(", doc))
    assert named - public == set(), "pseudocode names methods the Trainer does not have"
    assert public - named == set(), "Trainer methods missing from the pseudocode"
    block = doc[doc.index("Trainer.train():") + len("Trainer.train():"):doc.index("Trainer.evaluate(split):")]
    documented = re.findall(r"^\s*(?:return\s+)?Trainer\.(\w+)\(", block, flags=re.M)
    called = re.findall(r"self\.(\w+)\(", inspect.getsource(Trainer.train))
    assert documented == called
    for condition in ("not train.skip_train", "dataset.do_test"):
        assert condition in doc
