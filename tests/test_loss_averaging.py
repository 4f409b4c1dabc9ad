"""How the loss is averaged: SFT trains one token mean over the global batch unless the config says
otherwise (``model.calculate_per_token_loss``), with what Megatron's DDP needs for it; the loss
function returns the form Megatron's schedule expects in either mode. The training side (parity
with transformers, answer-only SFT with gradient accumulation, MoE aux loss) is in
test_hf_training_parity.py."""

import pytest
import torch

from plugtron.config import load_config
from plugtron.errors import ConfigError

SFT = ["dataset.dataset_root=/nonexistent/sft"]  # config only: the files are read when the data is built


def _cfg(*overrides):
    return load_config(None, list(overrides)).validate(world_size=1)


def test_sft_defaults_to_the_global_token_mean_and_pretraining_does_not():
    assert _cfg(*SFT).model.calculate_per_token_loss is True
    assert _cfg().model.calculate_per_token_loss is False
    assert _cfg(*SFT, "model.calculate_per_token_loss=false").model.calculate_per_token_loss is False
    assert _cfg("model.calculate_per_token_loss=true").model.calculate_per_token_loss is True


def test_per_token_loss_turns_off_averaging_in_the_collective_unless_the_user_asked_for_it():
    cfg = load_config(None, SFT)
    cfg.ddp.average_in_collective = True  # as the pretraining recipes set it: not the user's choice
    assert cfg.validate(world_size=1).ddp.average_in_collective is False
    with pytest.raises(ConfigError, match=r"ddp.average_in_collective: true cannot be combined with "
                                          r"model.calculate_per_token_loss"):
        _cfg(*SFT, "ddp.average_in_collective=true")


@pytest.mark.parametrize("per_token", [False, True])
def test_loss_func_returns_the_form_megatron_expects(per_token):
    from plugtron.training.step import loss_func

    losses = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    out = loss_func(mask, losses, per_token=per_token)
    if per_token:  # (sum, tokens as int, report [sum, tokens]): the schedule divides by the global count
        total, tokens, report = out
        assert total.item() == 5.0 and tokens.dtype == torch.int and tokens.item() == 2
        assert report["lm loss"].tolist() == [5.0, 2.0]
    else:  # (micro batch mean, report)
        loss, report = out
        assert loss.item() == 2.5 and report["lm loss"].item() == 2.5
