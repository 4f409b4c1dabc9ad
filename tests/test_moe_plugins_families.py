"""The MoE plugins on the MoE families' own routers: ``moe_token_drop`` drops tokens at capacity 0.5 on
Qwen3-MoE (softmax top-k, renormalised) and GLM-4.5 (sigmoid scores + expert bias, grouped top-k, a
shared expert and a dense first layer), and ``deepep`` with its fallback trains them, DeepSeek-V3 and
gpt-oss with the alltoall dispatcher on a machine without DeepEP (this one), with one warning. Two steps of each tiny recipe."""

import logging

import pytest

from plugtron.config import load_config
from plugtron.plugin_manager import PluginManager
from plugtron.training import train

from test_moe_token_drop import RoutedTokens

RUN = ["train.train_iters=2", "train.eval_interval=null", "train.global_batch_size=4", "train.micro_batch_size=2",
       "model.seq_length=64", "scheduler.lr_warmup_iters=1", "logger.log_interval=1", "logger.metrics_file=false",
       "logger.run_summary=false", "logger.log_throughput=false"]
RECIPES = ["tiny_qwen3_moe", "tiny_glm4_moe"]


def _train(recipe, *extra):
    pm, counter = PluginManager(), RoutedTokens()
    pm.register("routed", counter)
    summary = train(load_config(None, RUN + list(extra), recipe=recipe), plugin_manager=pm)
    assert len(summary["losses"]) == 2 and all(x == x for x in summary["losses"]), summary["losses"]
    return pm, counter


@pytest.mark.parametrize("recipe", RECIPES)
def test_token_drop_at_half_capacity_drops_tokens(recipe):
    pm, counter = _train(recipe, "moe_token_drop.moe_expert_capacity_factor=0.5",
                         "moe_token_drop.moe_pad_expert_input_to_capacity=false")
    assert "moe_token_drop" in pm.loaded
    # RoutedTokens counts top-k assignments per routed token: the capacity keeps about half of them
    assert counter.wanted > 0 and counter.wanted - counter.kept > 0.3 * counter.wanted, (counter.wanted, counter.kept)


@pytest.mark.parametrize("recipe", RECIPES + ["tiny_deepseek_v3", "tiny_gpt_oss"])  # (their token drop: own files)
def test_deepep_falls_back_to_alltoall_and_trains(recipe, caplog):
    with caplog.at_level(logging.WARNING, logger="plugtron"):
        pm, counter = _train(recipe, "deepep.fallback_to_alltoall=true")
    assert pm.loaded["deepep"].applied == "alltoall" and counter.kept == counter.wanted > 0
    warnings = [r.message for r in caplog.records if r.message.startswith("deepep:")]
    assert len(warnings) == 1 and "using the alltoall dispatcher instead" in warnings[0]
