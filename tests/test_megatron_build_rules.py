"""What Megatron-Core refuses only at build or first forward is refused by ``validate()`` (so by
``config show`` and ``train``) first, with one message naming the field; the fixed config trains."""

import pytest

from helpers import SMALL
from plugtron.config import load_config
from plugtron.errors import ConfigError
from plugtron.training import train

MOE = SMALL + ["model.num_moe_experts=4", "model.moe_router_topk=2", "train.eval_interval=null", "train.train_iters=2"]


@pytest.mark.parametrize("bad,path,fix", [
    (["model.tensor_model_parallel_size=2", "model.add_bias_linear=false"], "model.sequence_parallel",
     ["model.sequence_parallel=true"]),
    (["model.add_bias_linear=true"], "model.add_bias_linear", ["model.add_bias_linear=false"]),
    (["model.add_bias_linear=false", "model.moe_router_load_balancing_type=sinkhorn", "model.moe_aux_loss_coeff=0.01"],
     "model.moe_aux_loss_coeff", ["model.moe_aux_loss_coeff=0.0"]),
])
def test_refused_before_the_build_with_one_message_and_the_fix_validates(bad, path, fix):
    with pytest.raises(ConfigError) as err:
        load_config(None, MOE + bad).validate(world_size=2)
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(f"{path}: "), err.value.problems
    assert f"set {fix[0]}" in err.value.problems[0]
    load_config(None, MOE + bad + fix).validate(world_size=2)


def test_the_fixed_configs_take_steps():
    """One process: the bias-free MoE and sinkhorn without aux loss train (TP=2 with sequence
    parallelism trains in tests/test_parallel_layouts_export.py)."""
    for extra in (["model.add_bias_linear=false"],
                  ["model.add_bias_linear=false", "model.moe_router_load_balancing_type=sinkhorn", "model.moe_aux_loss_coeff=0.0"]):
        losses = train(load_config(None, MOE + extra))["losses"]
        assert len(losses) == 2 and all(x == x for x in losses), (extra, losses)
