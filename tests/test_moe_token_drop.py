"""The moe_token_drop plugin (former MegatronTokenDropCallback) on a real 2-layer MoE model."""

import logging

import pytest

from plugtron.config import load_config
from plugtron.errors import ConfigError
from plugtron.plugin_manager import PluginManager
from plugtron.plugins.moe_token_drop import MoETokenDrop, apply_moe_token_drop
from plugtron.training import train

from helpers import SMALL

EXPERTS, TOPK = 4, 2
MOE = SMALL + [f"model.num_moe_experts={EXPERTS}", f"model.moe_router_topk={TOPK}", "model.moe_token_dispatcher_type=alltoall",
               "model.add_bias_linear=false", "train.eval_interval=null", "train.train_iters=2"]


class RoutedTokens:
    """Counts (token, expert) assignments the routers asked for and the ones they kept."""

    def __init__(self):
        self.wanted = self.kept = 0

    def on_train_start(self, state):
        from megatron.core.transformer.moe.router import TopKRouter

        for chunk in state.model:
            for module in chunk.modules():
                if isinstance(module, TopKRouter):
                    module.register_forward_hook(self._count)

    def _count(self, module, args, output):
        probs, routing_map = output
        self.wanted += routing_map.shape[0] * module.topk  # the router's own k (DeepSeek-V3: 4)
        self.kept += int(routing_map.sum())


def routed(*overrides):
    pm, counter = PluginManager(), RoutedTokens()
    pm.register("routed", counter)
    cfg = load_config(None, MOE + list(overrides))
    train(cfg, plugin_manager=pm)
    return counter, cfg, pm


def test_capacity_half_drops_tokens_and_capacity_of_all_experts_drops_none():
    half, cfg, pm = routed("moe_token_drop.moe_expert_capacity_factor=0.5", "moe_token_drop.moe_pad_expert_input_to_capacity=false")
    assert "moe_token_drop" in pm.loaded and cfg.model.moe_expert_capacity_factor == 0.5
    assert half.wanted > 0 and half.kept <= half.wanted // 2 + EXPERTS * 2 * 4  # capacity rounds up per expert and layer
    assert half.wanted - half.kept > 0.3 * half.wanted, (half.wanted, half.kept)
    full, _, _ = routed(f"moe_token_drop.moe_expert_capacity_factor={EXPERTS}", "moe_token_drop.moe_pad_expert_input_to_capacity=false")
    assert full.wanted > 0 and full.kept == full.wanted


def test_off_nothing_is_dropped_and_the_plugin_is_not_loaded():
    off, cfg, pm = routed()
    assert "moe_token_drop" not in pm.loaded and cfg.model.moe_expert_capacity_factor is None
    assert off.kept == off.wanted


def test_load_balancing_is_checked_before_the_build():
    cfg = load_config(None, MOE + ["moe_token_drop={}", "model.moe_router_load_balancing_type=sinkhorn"])
    assert MoETokenDrop.config_problems(cfg) == [
        "model.moe_router_load_balancing_type: token dropping needs one of 'aux_loss', 'seq_aux_loss', "
        "'global_aux_loss', 'none', got 'sinkhorn'",
    ]
    with pytest.raises(ConfigError, match="moe_router_load_balancing_type: token dropping needs"):
        PluginManager().load(cfg)


def _megatron_accepts(dispatcher, backend, balancing, factor, pad) -> bool:
    """Whether the installed Megatron-Core's own TransformerConfig takes these token-drop settings."""
    from megatron.core.transformer import TransformerConfig

    coeff = [0.0] * len(balancing) if isinstance(balancing, list) else 0.0
    try:
        TransformerConfig(num_layers=1, hidden_size=16, num_attention_heads=2, num_moe_experts=EXPERTS,
                          moe_router_topk=TOPK, add_bias_linear=False, moe_token_dispatcher_type=dispatcher,
                          moe_flex_dispatcher_backend=backend, moe_router_load_balancing_type=balancing,
                          moe_aux_loss_coeff=coeff, moe_expert_capacity_factor=factor,
                          moe_pad_expert_input_to_capacity=pad)
    except (ValueError, AssertionError):
        return False
    return True


DISPATCH = [("allgather", "deepep"), ("alltoall", "deepep"), ("flex", "deepep"), ("flex", "hybridep")]
BALANCING = ["aux_loss", "seq_aux_loss", "global_aux_loss", "sinkhorn", "none", ["aux_loss", "global_aux_loss"],
             ["seq_aux_loss", "sinkhorn"]]


@pytest.mark.parametrize("dispatcher,backend", DISPATCH)
def test_the_rule_table_is_the_installed_megatron_cores(dispatcher, backend):
    """Every (load balancing, capacity factor, padding) plugtron accepts, Megatron's TransformerConfig
    accepts, and the other way round (factors up to experts / topk: above, plugtron also refuses
    padding, which Megatron only finds mid-step)."""
    from types import SimpleNamespace

    from plugtron.plugins.moe_token_drop import token_drop_problems

    for balancing in BALANCING:
        for factor in (-1.0, 0.0, 0.5, 1.0, EXPERTS / TOPK):
            for pad in (False, True):
                provider = SimpleNamespace(num_moe_experts=EXPERTS, moe_router_topk=TOPK, moe_token_dispatcher_type=dispatcher,
                                           moe_flex_dispatcher_backend=backend, moe_router_load_balancing_type=balancing)
                ours = not token_drop_problems(provider, factor, pad)
                given = None if factor < 0 else factor  # what apply_moe_token_drop sets on the provider
                assert ours == _megatron_accepts(dispatcher, backend, balancing, given, pad), (balancing, factor, pad, ours)


@pytest.mark.parametrize("extra", [["model.moe_token_dispatcher_type=allgather"],
                                   ["model.moe_router_load_balancing_type=global_aux_loss"]])
def test_what_megatron_accepts_takes_a_step(extra):
    counter, cfg, pm = routed("moe_token_drop.moe_expert_capacity_factor=0.5", *extra)
    assert "moe_token_drop" in pm.loaded and cfg.model.moe_expert_capacity_factor == 0.5
    assert 0 < counter.kept < counter.wanted


def test_the_guides_python_call_and_its_rules(caplog):
    cfg = load_config(None, MOE)
    apply_moe_token_drop(cfg.model, moe_expert_capacity_factor=-1, moe_pad_expert_input_to_capacity=False)
    assert cfg.model.moe_expert_capacity_factor is None  # negative: no capacity
    with pytest.raises(ValueError, match="moe_pad_expert_input_to_capacity: padding to capacity needs a moe_expert_capacity_factor"):
        apply_moe_token_drop(cfg.model, moe_expert_capacity_factor=-1, moe_pad_expert_input_to_capacity=True)
    with pytest.raises(ValueError, match="at most model.num_moe_experts / model.moe_router_topk = 2 .*got 4"):
        apply_moe_token_drop(cfg.model, moe_expert_capacity_factor=EXPERTS)
    apply_moe_token_drop(cfg.model)
    assert (cfg.model.moe_expert_capacity_factor, cfg.model.moe_pad_expert_input_to_capacity) == (1.0, True)
    dense = load_config(None, SMALL)
    with caplog.at_level(logging.WARNING, logger="plugtron"):
        apply_moe_token_drop(dense.model, moe_expert_capacity_factor=0.5)
    assert dense.model.moe_expert_capacity_factor is None and "the model is dense" in caplog.text
