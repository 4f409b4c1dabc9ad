"""The comm_overlap plugin (former MegatronCommOverlapCallback): NeMo's defaults per layout, the
section's values win, user-set fields are left alone; same losses with and without overlap."""

import logging

import pytest

from plugtron.config import load_config
from plugtron.plugins.comm_overlap import BUCKET_SIZE, CommOverlap, plan

from helpers import SMALL, torchrun_runs

DIST_OPT = ["optimizer.use_distributed_optimizer=true"]


def planned(world, *overrides, cuda=False):
    cfg = load_config(None, SMALL + ["comm_overlap={}", *overrides]).validate(world)
    changes, warnings = plan(cfg, cuda)
    return {f"{s}.{n}": v for (s, n), v in changes.items()}, warnings


def test_dp2_with_the_distributed_optimizer_overlaps_grads_and_params():
    got, _ = planned(2, *DIST_OPT)
    assert (got["ddp.bucket_size"], got["ddp.overlap_grad_reduce"], got["ddp.overlap_param_gather"]) == (BUCKET_SIZE, True, True)
    assert got["optimizer.overlap_param_gather_with_optimizer_step"] is False
    assert "ddp.align_param_gather" not in got  # only with PP and virtual pipeline
    assert (got["model.overlap_p2p_comm"], got["model.batch_p2p_comm"]) == (False, False)  # PP = 1
    plain, _ = planned(2)  # no distributed optimizer: DDP left as it is
    assert not any(k.startswith("ddp.") for k in plain)


def test_pipeline_defaults_with_and_without_virtual_stages():
    got, _ = planned(2, "model.pipeline_model_parallel_size=2", "model.num_layers=4")
    assert (got["model.overlap_p2p_comm"], got["model.batch_p2p_comm"]) == (False, True)
    got, _ = planned(8, "model.pipeline_model_parallel_size=2", "model.num_layers=4",
                     "model.virtual_pipeline_model_parallel_size=2", *DIST_OPT, cuda=True)
    assert (got["model.overlap_p2p_comm"], got["model.batch_p2p_comm"]) == (True, False)
    assert got["ddp.align_param_gather"] is True


def test_the_sections_values_win_and_tp_overlap_needs_tp_sp_te(caplog):
    got, _ = planned(2, *DIST_OPT, "comm_overlap.overlap_param_gather=false", "comm_overlap.bucket_size=1000")
    assert (got["ddp.overlap_param_gather"], got["ddp.bucket_size"], got["ddp.overlap_grad_reduce"]) == (False, 1000, True)
    got, warnings = planned(1, "comm_overlap.tp_comm_overlap=true", cuda=True)
    assert got["model.tp_comm_overlap"] is False
    assert warnings == ["comm_overlap.tp_comm_overlap: switched off (model.tensor_model_parallel_size < 2; "
                        "model.sequence_parallel is off; Transformer Engine on CUDA is not available)"]


def test_a_field_the_user_set_is_never_overridden(monkeypatch):
    from plugtron.config import ConfigContainer

    cfg = load_config(None, SMALL + ["comm_overlap={}", *DIST_OPT]).validate(2)
    monkeypatch.setattr(ConfigContainer, "is_user_set", lambda self, path: "the command line" if path == "ddp.overlap_grad_reduce" else None,
                        raising=False)  # plugin-api's config.is_user_set: where the user set a path, or None
    changes, _ = plan(cfg, False)
    assert ("ddp", "overlap_grad_reduce") not in changes and ("ddp", "overlap_param_gather") in changes


def test_configure_model_writes_the_built_configs():
    cfg = load_config(None, SMALL + ["comm_overlap={}", *DIST_OPT]).validate(2)
    plugin = CommOverlap(cfg)
    plugin.configure_model(cfg, cfg.model)
    assert cfg.ddp.overlap_grad_reduce and cfg.ddp.overlap_param_gather and cfg.ddp.bucket_size == BUCKET_SIZE
    assert cfg.optimizer.overlap_param_gather and plugin.param_gather
    assert cfg.model.wgrad_deferral_limit == -1 and cfg.model.batch_p2p_comm is False


def test_param_gather_without_the_distributed_optimizer_is_named():
    cfg = load_config(None, SMALL + ["comm_overlap.overlap_param_gather=true"])
    assert CommOverlap.config_problems(cfg) == ["comm_overlap.overlap_param_gather: needs optimizer.use_distributed_optimizer=true"]


@pytest.mark.slow
def test_dp2_distributed_optimizer_same_losses_with_and_without_overlap(tmp_path):
    base = SMALL + DIST_OPT + ["train.eval_interval=2", "train.eval_iters=1", "train.train_iters=4",
                               f"checkpoint.save={tmp_path}/ckpt", "checkpoint.save_interval=2"]
    plain, overlap = torchrun_runs(tmp_path, "runs", [base, base + ["comm_overlap={}", f"checkpoint.save={tmp_path}/ckpt2"]])
    assert len(plain["losses"]) == 4
    assert plain["losses"] == pytest.approx(overlap["losses"], abs=1e-6)
