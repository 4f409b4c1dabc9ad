"""Every file in examples/configs/ validates as its own comment says to run it: the recipe
(``--recipe NAME``) and process count (``--nproc_per_node=N``) are read from the file's
``plugtron train`` line, so the documented command and this test cannot drift apart."""

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

from plugtron.config import load_config
from plugtron.plugin_checks import check_plugins
from plugtron.plugin_manager import GROUP, discover

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "examples" / "configs").glob("*.yaml"))
PLUGIN_SRC = ROOT / "examples" / "plugtron-example-plugin" / "src"


def _how_to_run(path):
    """(recipe, processes) from the file's ``plugtron train`` comment line."""
    line = next(l for l in path.read_text().splitlines() if l.startswith("#") and "plugtron train" in l)
    recipe = re.search(r"--recipe (\S+)", line)
    procs = re.search(r"--nproc_per_node=(\d+)", line)
    assert f"examples/configs/{path.name}" in line, line
    return (recipe.group(1) if recipe else "tiny"), int(procs.group(1)) if procs else 1


def test_there_is_an_example_per_use():
    assert {p.name for p in CONFIGS} >= {"pretrain_blend.yaml", "sft_from_hf.yaml", "peft_lora.yaml",
                                         "two_process_tp.yaml", "two_process_dp.yaml", "third_party_plugin.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_config_validates_as_documented(path, monkeypatch):
    recipe, procs = _how_to_run(path)
    cfg = load_config(str(path), [], recipe=recipe).validate(procs)
    available = list(metadata.entry_points(group=GROUP))
    if cfg.plugins:  # the example plugin, as `pip install -e examples/plugtron-example-plugin` registers it
        monkeypatch.syspath_prepend(str(PLUGIN_SRC))
        available.append(metadata.EntryPoint(name="best_loss", value="plugtron_example_plugin:BestLoss", group=GROUP))
    enabled = [name for name, _, _ in check_plugins(cfg, discover(available))]
    if cfg.plugins:
        assert "best_loss" in enabled
    sys.modules.pop("plugtron_example_plugin", None)


def test_sft_example_takes_the_model_from_the_checkpoint(tmp_path):
    """The SFT example names no model field: the imported checkpoint's architecture is used."""
    from _hf_models import build, save
    from plugtron.providers.hf import AutoBridge

    AutoBridge.import_ckpt(str(save(build("qwen2", vocab=257, positions=128), tmp_path / "hf")), str(tmp_path / "ckpt"))
    path = ROOT / "examples" / "configs" / "sft_from_hf.yaml"
    cfg = load_config(str(path), [f"checkpoint.pretrained_checkpoint={tmp_path / 'ckpt'}"], recipe="qwen25_0_5b_sft")
    # the recipe's 2048 is cut to the imported model's 128 positions (issue 29: the length follows the model)
    assert (cfg.model.num_layers, cfg.model.hidden_size) == (2, 64) and cfg.model.seq_length == 128
