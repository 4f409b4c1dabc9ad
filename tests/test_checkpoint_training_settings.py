"""A run from a checkpoint keeps the checkpoint's training settings (dropouts, MoE auxiliary losses;
an imported model's come from its Hugging Face config) unless the user or a recipe the user names sets
them, and states in one line each one that differs from the checkpoint's."""

import logging

import pytest

from _hf_models import build, hf_config, save

SMALL_RUN = ["train.train_iters=2", "train.micro_batch_size=2", "train.global_batch_size=2", "model.seq_length=16"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from plugtron.providers.hf import AutoBridge

    root = tmp_path_factory.mktemp("settings")
    out = {}
    for family in ("mixtral", "llama"):
        hf_dir = save(build(family, vocab=300), root / f"hf-{family}")
        AutoBridge.import_ckpt(str(hf_dir), str(root / family))
        out[family] = root / family
    return out


def _cfg(ckpt, *overrides, recipe="tiny"):
    from plugtron.config import load_config

    return load_config(None, [f"checkpoint.pretrained_checkpoint={ckpt}", *SMALL_RUN, *overrides], recipe=recipe)


@pytest.mark.parametrize("recipe", ["tiny", "none"])
def test_an_imported_model_keeps_the_hf_configs_training_settings(imported, recipe, caplog):
    with caplog.at_level(logging.INFO, logger="plugtron"):
        mixtral = _cfg(imported["mixtral"], recipe=recipe).model
        llama = _cfg(imported["llama"], recipe=recipe).model
    hf_coeff = hf_config("mixtral").router_aux_loss_coef
    assert hf_coeff > 0 and mixtral.moe_aux_loss_coeff == pytest.approx(hf_coeff)  # not the recipe's 0.0
    assert (llama.hidden_dropout, llama.attention_dropout) == (0.0, 0.0)  # Llama trains without dropout
    assert "differ from the checkpoint" not in caplog.text


def test_what_the_user_sets_wins_and_is_stated_in_one_line(imported, caplog):
    with caplog.at_level(logging.INFO, logger="plugtron"):
        m = _cfg(imported["mixtral"], "model.moe_aux_loss_coeff=0.0", "model.hidden_dropout=0.1").model
    assert (m.moe_aux_loss_coeff, m.hidden_dropout) == (0.0, 0.1)
    lines = [r.getMessage() for r in caplog.records if "differ from the checkpoint" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "model.hidden_dropout 0.1 (checkpoint 0.0; from command line)" in lines[0]
    assert f"model.moe_aux_loss_coeff 0.0 (checkpoint {hf_config('mixtral').router_aux_loss_coef}; from command line)" in lines[0]


def test_a_recipe_the_user_names_sets_them_and_is_named(imported, caplog):
    with caplog.at_level(logging.INFO, logger="plugtron"):
        m = _cfg(imported["mixtral"], recipe="tiny_mixtral").model
    assert m.moe_aux_loss_coeff == 0.02  # the recipe's, not the checkpoint's
    assert (f"model.moe_aux_loss_coeff 0.02 (checkpoint {hf_config('mixtral').router_aux_loss_coef}; "
            "from recipe 'tiny_mixtral')") in caplog.text
