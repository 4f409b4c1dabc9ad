"""The deepep plugin (former DeepEPCallback; Bridge's flex dispatcher backend): the clear error on a
CPU machine, what it sets with the GPU faked, its fallback, and user-set values winning."""

import logging
import sys

import pytest

from plugtron.config import load_config
from plugtron.errors import UnsupportedOnThisMachine
from plugtron.plugin_manager import PluginManager
from plugtron.plugins import deepep
from plugtron.plugins.deepep import DeepEP, apply_deepep, gpu_problem, validate_deepep
from plugtron.training import train

from helpers import SMALL

MOE = SMALL + ["model.num_moe_experts=4", "model.moe_router_topk=2", "model.add_bias_linear=false", "train.eval_interval=null", "train.train_iters=2",
               "logger.metrics_file=false"]
H100, A100, B200, GB200, L40, RTX5090 = ((9, "NVIDIA H100 80GB HBM3"), (8, "NVIDIA A100-SXM4-80GB"), (10, "NVIDIA B200"),
                                         (10, "NVIDIA GB200"), (8, "NVIDIA L40S"), (12, "NVIDIA GeForce RTX 5090"))


def fake_gpu(monkeypatch, gpu, package=True):
    monkeypatch.setattr(deepep, "this_gpu", lambda: gpu)
    monkeypatch.setattr(deepep, "have_deep_ep", lambda: package)


@pytest.mark.parametrize("backend,gpu,ok", [
    ("deepep", H100, True), ("deepep", A100, True), ("deepep", L40, True), ("deepep", B200, True),
    ("deepep", GB200, False), ("deepep", RTX5090, False), ("deepep", None, False),
    ("hybridep", GB200, True), ("hybridep", H100, True), ("hybridep", RTX5090, False), ("hybridep", None, False),
])
def test_the_gpu_table(backend, gpu, ok):
    assert (gpu_problem(backend, gpu, package=True) is None) is ok


def test_on_a_supported_gpu_it_sets_the_flex_dispatcher(monkeypatch):
    fake_gpu(monkeypatch, H100)
    cfg = load_config(None, MOE + ["deepep={}", "model.moe_shared_expert_overlap=false"]).validate()
    assert DeepEP.config_problems(cfg) == []
    plugin = DeepEP(cfg)
    cfg.model.moe_shared_expert_overlap = True  # as a recipe might have it
    plugin.configure_model(cfg, cfg.model)
    m = cfg.model
    assert (plugin.applied, m.moe_token_dispatcher_type, m.moe_flex_dispatcher_backend, m.moe_shared_expert_overlap) == \
        ("flex", "flex", "deepep", False)
    validate_deepep(m, gpu=H100)
    with pytest.raises(UnsupportedOnThisMachine, match="model.moe_flex_dispatcher_backend: .* this GPU is NVIDIA GeForce RTX 5090"):
        validate_deepep(m, gpu=RTX5090)


def test_hybridep_when_chosen(monkeypatch):
    fake_gpu(monkeypatch, GB200)
    cfg = load_config(None, MOE + ["deepep.backend=hybridep"]).validate()
    DeepEP(cfg).configure_model(cfg, cfg.model)
    assert (cfg.model.moe_token_dispatcher_type, cfg.model.moe_flex_dispatcher_backend) == ("flex", "hybridep")


def test_on_cpu_the_run_stops_naming_the_section(capsys):
    from plugtron import cli

    with pytest.raises(UnsupportedOnThisMachine, match=r"^deepep: the flex dispatcher's deepep backend needs a CUDA GPU .*"
                                                        r"this machine has none; remove the deepep section, or set "
                                                        r"deepep.fallback_to_alltoall=true"):
        apply_deepep(load_config(None, MOE).model, gpu=None)
    assert cli.main(["train", *MOE, "deepep={}"]) == 2
    err = capsys.readouterr().err
    assert "deepep: the flex dispatcher's deepep backend needs a CUDA GPU" in err and "Traceback" not in err, err


def test_elsewhere_the_fallback_is_alltoall_with_one_warning_and_the_run_trains(caplog):
    pm = PluginManager()
    with caplog.at_level(logging.WARNING, logger="plugtron"):
        summary = train(load_config(None, MOE + ["deepep.fallback_to_alltoall=true"]), plugin_manager=pm)
    assert pm.loaded["deepep"].applied == "alltoall" and len(summary["losses"]) == 2
    warnings = [r.message for r in caplog.records if r.message.startswith("deepep:")]
    assert len(warnings) == 1 and "using the alltoall dispatcher instead" in warnings[0]


def test_a_gpu_without_the_deep_ep_package_is_named(monkeypatch):
    fake_gpu(monkeypatch, H100, package=False)
    with pytest.raises(UnsupportedOnThisMachine, match="needs the deep_ep package"):
        DeepEP(load_config(None, MOE + ["deepep={}"]).validate())


def test_a_dense_model_only_warns(monkeypatch, caplog):
    fake_gpu(monkeypatch, None)
    cfg = load_config(None, SMALL + ["deepep={}"]).validate()
    before = cfg.model.moe_token_dispatcher_type
    with caplog.at_level(logging.WARNING, logger="plugtron"):
        plugin = DeepEP(cfg)
        plugin.configure_model(cfg, cfg.model)
    assert plugin.applied == "dense" and cfg.model.moe_token_dispatcher_type == before
    assert "deepep: the model is dense" in caplog.text


@pytest.mark.parametrize("override,expected", [
    ("model.moe_shared_expert_overlap=true", "model.moe_shared_expert_overlap: set to True in command line, but the deepep "
                                             "section sets False"),
    ("model.moe_flex_dispatcher_backend=hybridep", "model.moe_flex_dispatcher_backend: set to 'hybridep' in command line"),
    ("moe_token_drop={}", "deepep: cannot be combined with moe_token_drop"),
    ("deepep.backend=other", "deepep.backend: expected one of 'deepep', 'hybridep', got str 'other'"),
])
def test_values_the_user_set_are_never_overridden(override, expected, capsys):
    from plugtron import cli

    assert cli.main(["config", "show", *MOE, "deepep={}", override]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err


def test_the_dispatcher_the_user_set_conflicts_but_flex_set_explicitly_is_fine():
    cfg = load_config(None, MOE + ["deepep={}", "model.moe_token_dispatcher_type=alltoall"]).validate()
    assert DeepEP.config_problems(cfg) == ["model.moe_token_dispatcher_type: set to 'alltoall' in command line, but the "
                                           "deepep section sets 'flex' (flex dispatcher, deepep); remove one of the two"]
    flex = load_config(None, MOE + ["deepep={}", "model.moe_token_dispatcher_type=flex"])
    assert DeepEP.config_problems(flex.validate()) == []


def test_off_the_plugin_is_not_imported():
    sys.modules.pop("plugtron.plugins.deepep", None)
    pm = PluginManager()
    pm.load(load_config(None, MOE).validate())
    assert "deepep" not in pm.loaded and "plugtron.plugins.deepep" not in sys.modules
