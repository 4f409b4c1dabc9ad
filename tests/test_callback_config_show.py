"""The callback plugins' own config rules are reported by `plugtron config show` like every config error."""

import pytest

MOE = ["model.num_moe_experts=4", "model.moe_router_topk=2", "model.add_bias_linear=false"]


@pytest.mark.parametrize("overrides,expected", [
    (["moe_token_drop={}", *MOE, "model.moe_token_dispatcher_type=allgather"],
     "model.moe_token_dispatcher_type: token dropping needs one of 'alltoall', 'alltoall_seq', got 'allgather'"),
    (["comm_overlap.overlap_param_gather=true"],
     "comm_overlap.overlap_param_gather: needs optimizer.use_distributed_optimizer=true"),
    (["train.check_for_spiky_loss=true", "train.spiky_loss_factor=1"], "train.spiky_loss_factor: expected a number > 1"),
])
def test_config_show_names_the_field(overrides, expected, capsys):
    from plugtron import cli

    assert cli.main(["config", "show", *overrides]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
