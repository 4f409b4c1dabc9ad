"""The callback plugins' own config rules are reported by `plugtron config show` like every config error."""

import pytest

MOE = ["model.num_moe_experts=4", "model.moe_router_topk=2", "model.add_bias_linear=false"]


@pytest.mark.parametrize("overrides,expected", [
    (["moe_token_drop={}", *MOE, "model.moe_router_load_balancing_type=sinkhorn", "model.moe_aux_loss_coeff=0.0"],
     "model.moe_router_load_balancing_type: token dropping needs one of 'aux_loss', 'seq_aux_loss', 'global_aux_loss', "
     "'none', got 'sinkhorn'"),
    (["comm_overlap.overlap_param_gather=true"],
     "comm_overlap.overlap_param_gather: needs optimizer.use_distributed_optimizer=true"),
    (["train.check_for_spiky_loss=true", "train.spiky_loss_factor=1"], "train.spiky_loss_factor: expected a number > 1"),
    (["profiling.use_nsys_profiler=true", "profiling.profile_step_start=3", "profiling.profile_step_end=2"],
     "profiling.profile_step_end: expected >= profiling.profile_step_start (3; both iterations are profiled), got 2"),
    (["profiling.record_memory_history=true", "profiling.profile_ranks=[3]"], "profiling.profile_ranks: [3] not in this run's ranks"),
    (["deepep={}", *MOE, "model.moe_shared_expert_overlap=true"],
     "model.moe_shared_expert_overlap: set to True in command line, but the deepep section sets False"),
])
def test_config_show_names_the_field(overrides, expected, capsys):
    from plugtron import cli

    assert cli.main(["config", "show", *overrides]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
