"""Recipes: every one builds and validates at the world size it is laid out for, the CPU-sized ones
really train, and the values are Megatron Bridge's (spot checks against the cited source)."""

import math
import subprocess
import sys

import pytest

from plugtron.config import load_config
from plugtron.errors import ConfigError
from plugtron.recipes import get_recipe, names, summaries, world_size

TUNING = ["dataset.dataset_root=/data/sft", "checkpoint.pretrained_checkpoint=/nonexistent/base"]
CPU_SIZED = [n for n in names() if n.startswith("tiny")]
SHORT = ["train.train_iters=3", "train.eval_interval=3", "train.eval_iters=1", "logger.log_interval=1",
         "scheduler.lr_warmup_iters=1", "train.global_batch_size=4", "train.micro_batch_size=2"]


def _overrides(name):
    return TUNING if name.endswith(("_sft", "_peft")) else []


@pytest.mark.parametrize("name", [n for n in names() if n != "none"])
def test_every_recipe_builds_and_validates_at_its_world_size(name):
    from plugtron.plugin_checks import check_plugins
    from plugtron.plugin_manager import discover

    cfg = load_config(None, _overrides(name), recipe=name).validate(world_size(name))
    check_plugins(cfg, discover())  # the plugins it enables accept it too (peft with MoE's sequence parallelism)
    m = cfg.model
    assert cfg.world_size == world_size(name)
    assert cfg.world_size % (m.tensor_model_parallel_size * m.pipeline_model_parallel_size * m.context_parallel_size) == 0
    seq = getattr(cfg.dataset, "sequence_length", None) or cfg.dataset.seq_length
    assert seq == m.seq_length  # the dataset follows the model
    assert (cfg.peft is not None) == name.endswith("_peft")
    fn = get_recipe(name)
    if not name.startswith("tiny"):  # a plain function, documented with its sources
        assert fn.__name__ == f"{name}_config" and ("Megatron-Bridge" in fn.__doc__ or "NeMo 2.0" in fn.__doc__)


@pytest.mark.parametrize("overrides, seq", [
    (["model.provider=llama3_8b"], 8192),                                # a provider alone, over the tiny recipe
    (["model.provider=qwen25_0_5b", "model.seq_length=1024"], 1024),     # docs/providers.md's example
])
def test_dataset_length_follows_the_model(overrides, seq):
    cfg = load_config(None, overrides).validate(1)
    assert cfg.model.seq_length == cfg.dataset.sequence_length == seq
    with pytest.raises(ConfigError, match="dataset.sequence_length: 512 differs from model.seq_length"):
        load_config(None, overrides + ["dataset.sequence_length=512"]).validate(1)


def test_none_recipe_needs_a_model():
    with pytest.raises(ConfigError, match="model.num_layers: expected >= 1"):
        load_config(None, [], recipe="none").validate(1)
    cfg = load_config(None, ["model.provider=llama3_8b", "optimizer.lr=3e-4"], recipe="none").validate(1)
    assert cfg.dataset.sequence_length == cfg.model.seq_length == 8192


@pytest.mark.parametrize("name, tp, pp, vpp, cp, gbs, seq, ws", [
    ("llama3_8b_pretrain", 1, 1, None, 2, 512, 8192, 2),
    ("llama3_70b_pretrain", 4, 4, 5, 2, 512, 8192, 32),
    ("llama31_405b_pretrain", 8, 8, 2, 4, 512, 131072, 256),
    ("llama31_405b_sft", 8, 16, None, 1, 16, 2048, 128),
    ("llama3_8b_sft", 2, 1, None, 1, 8, 4096, 2),
    ("qwen25_72b_pretrain", 8, 4, None, 1, 32, 4096, 32),
    ("mixtral_8x7b_pretrain", 2, 1, None, 1, 32, 4096, 8),
    ("qwen3_8b_pretrain", 4, 1, None, 1, 32, 4096, 4),
    ("qwen3_32b_pretrain", 8, 2, None, 1, 32, 4096, 16),
    ("qwen3_32b_sft", 8, 2, None, 1, 8, 2048, 16),
    ("qwen3_0_6b_peft", 1, 1, None, 1, 8, 2048, 1),
    ("olmo2_7b_pretrain", 2, 1, None, 1, 1024, 4096, 2),
    ("qwen3_30b_a3b_pretrain", 4, 2, None, 1, 32, 4096, 32),
    ("qwen3_235b_a22b_pretrain", 4, 16, None, 2, 32, 4096, 512),
    ("qwen3_235b_a22b_sft", 4, 16, None, 1, 32, 2048, 256),
    ("olmo2_13b_pretrain", 4, 1, None, 1, 2048, 4096, 4),
    ("gemma3_1b_pretrain", 1, 1, None, 1, 512, 32768, 1),
    ("gemma3_27b_sft", 8, 2, None, 1, 32, 4096, 16),
    ("gemma3_27b_peft", 4, 1, None, 1, 32, 4096, 4),
])
def test_bridge_values(name, tp, pp, vpp, cp, gbs, seq, ws):
    cfg = get_recipe(name)()
    m = cfg.model
    assert (m.tensor_model_parallel_size, m.pipeline_model_parallel_size, m.virtual_pipeline_model_parallel_size,
            m.context_parallel_size, cfg.train.global_batch_size, m.seq_length) == (tp, pp, vpp, cp, gbs, seq)
    assert world_size(name) == ws


def test_qwen3_moe_recipes_carry_bridges_moe_settings():
    pre, peft = get_recipe("qwen3_30b_a3b_pretrain")(), get_recipe("qwen3_30b_a3b_peft")()
    assert (pre.model.expert_model_parallel_size, pre.model.expert_tensor_parallel_size, pre.model.sequence_parallel,
            pre.model.recompute_granularity) == (4, 1, True, "full")
    assert (peft.peft.dim, peft.peft.alpha, peft.peft.target_modules) == (8, 16, ["linear_qkv", "linear_proj"])
    big = get_recipe("qwen3_235b_a22b_pretrain")()
    assert big.model.expert_model_parallel_size == 8 and big.model.account_for_loss_in_pipeline_split


def test_glm45_recipes_carry_bridges_layouts():
    pre, peft = get_recipe("glm45_355b_pretrain")(), get_recipe("glm45_air_106b_peft")()
    m = pre.model
    assert (m.tensor_model_parallel_size, m.pipeline_model_parallel_size, m.expert_model_parallel_size,
            m.expert_tensor_parallel_size, m.sequence_parallel, pre.train.global_batch_size, pre.optimizer.lr) == \
        (2, 8, 16, 1, True, 2048, 1e-4)
    assert (m.num_layers_in_first_pipeline_stage, m.num_layers_in_last_pipeline_stage) == (10, 10)  # 10 + 6 x 12 + 10
    assert m.moe_layer_freq == [0] * 3 + [1] * 89 and m.moe_router_topk_scaling_factor == 2.5 and m.qk_layernorm
    assert world_size("glm45_355b_pretrain") == 256 and world_size("glm45_air_106b_peft") == 8
    assert (peft.model.pipeline_model_parallel_size, peft.model.expert_model_parallel_size, peft.peft.dim,
            peft.dataset.packed_sequence_specs, peft.optimizer.lr) == (2, 4, 32, None, 1e-4)
    assert not peft.model.qk_layernorm and peft.model.moe_layer_freq == [0] + [1] * 45
def test_gpt_oss_recipes_carry_bridges_settings():
    pre, sft, peft = (get_recipe(f"gpt_oss_120b_{mode}")() for mode in ("pretrain", "sft", "peft"))
    assert (pre.model.tensor_model_parallel_size, pre.model.pipeline_model_parallel_size, pre.model.expert_model_parallel_size,
            pre.model.expert_tensor_parallel_size, pre.model.sequence_parallel, pre.model.calculate_per_token_loss,
            pre.train.global_batch_size, pre.scheduler.lr_warmup_iters) == (2, 4, 16, 1, True, True, 512, 2000)
    assert (sft.model.pipeline_model_parallel_size, sft.model.expert_model_parallel_size, sft.optimizer.lr,
            sft.optimizer.adam_beta2, sft.train.global_batch_size, sft.model.seq_length) == (4, 8, 5e-6, 0.98, 128, 2048)
    assert (peft.peft.dim, peft.peft.alpha, peft.peft.target_modules, peft.optimizer.lr) == (32, 32, ["linear_qkv", "linear_proj"], 1e-4)
    assert get_recipe("gpt_oss_20b_pretrain")().model.expert_model_parallel_size == 4
    assert world_size("gpt_oss_20b_sft") == 8 and world_size("gpt_oss_20b_peft") == 1


def test_modes_follow_bridge_bases():
    pre, sft, peft = (get_recipe(f"llama3_8b_{mode}")() for mode in ("pretrain", "sft", "peft"))
    assert (pre.optimizer.lr, pre.optimizer.min_lr, pre.scheduler.lr_warmup_iters, pre.train.train_iters) == (3e-4, 3e-5, 2000, 1168251)
    assert pre.dataset.mock and pre.tokenizer.tokenizer_type == "NullTokenizer" and pre.optimizer.use_distributed_optimizer
    assert (sft.optimizer.lr, sft.optimizer.adam_beta2, sft.train.train_iters, sft.rng.seed) == (5e-6, 0.98, 1000, 5678)
    assert sft.dataset.packed_sequence_specs.packed_sequence_size == 4096 and sft.peft is None
    assert (peft.optimizer.lr, peft.peft.dim, peft.peft.alpha) == (1e-4, 8, 16) and not peft.optimizer.use_distributed_optimizer
    assert get_recipe("llama31_405b_peft")().peft.target_modules == ["linear_qkv"]


def test_recipes_are_overridable_by_yaml_and_command_line(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("train: {train_iters: 3000}\nmodel: {seq_length: 2048}\n")
    cfg = load_config(str(y), ["train.global_batch_size=64"], recipe="llama3_8b_pretrain").validate(2)
    assert (cfg.train.train_iters, cfg.train.global_batch_size, cfg.model.seq_length) == (3000, 64, 2048)
    assert cfg.dataset.sequence_length == 2048 and cfg.model.context_parallel_size == 2


def test_unknown_recipe_lists_names_without_torch():
    code = ("import sys\nfrom plugtron.recipes import get_recipe\nfrom plugtron.errors import ConfigError\n"
            "try:\n    get_recipe('llama3_8b')\nexcept ConfigError as e:\n    print(e)\nprint('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "unknown recipe 'llama3_8b' (did you mean llama3_8b_peft, llama3_8b_pretrain, llama3_8b_sft?)" in out
    assert "tiny_llama" in out and out.strip().endswith("False")


def test_summaries_are_one_line_each():
    rows = summaries()
    assert [n for n, _ in rows] == names() and all(line and "\n" not in line for _, line in rows)


@pytest.mark.parametrize("name", CPU_SIZED)
def test_cpu_sized_recipes_train(name):
    from plugtron.training import train

    extra = []

    summary = train(load_config(None, SHORT + extra, recipe=name))
    losses = summary["losses"]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] + 0.5  # a real model on real data: no blow-up in three steps


def test_migrate_table_names_existing_recipes():
    """core/migrate's NeMo recipe -> plugtron recipe column points at recipes that exist, and each
    recipe's docstring names the NeMo recipe the table maps to it."""
    from plugtron.migrate.table import PLUGTRON_RECIPES

    for nemo, ours in PLUGTRON_RECIPES.items():
        if ours is not None:
            assert f"{ours}_pretrain" in names()
            assert f"llm.{nemo}.pretrain_recipe()" in get_recipe(f"{ours}_pretrain").__doc__
