"""Regression tests for values that used to be accepted (issue 16): ranges, fixed sets, lists,
non-finite numbers, cross-field rules; ``config show`` and ``plugins list`` refuse what ``train``
refuses; the rule table and ``docs/config.md`` agree."""

from pathlib import Path

import pytest

from plugtron.config import load_config
from plugtron.config.rules import RULES, table_markdown
from plugtron.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _problems(*overrides, world_size=1):
    with pytest.raises(ConfigError) as info:
        load_config(None, list(overrides)).validate(world_size=world_size)
    return str(info.value).splitlines()[1:]


# ---- the list of values validate() accepted and training crashed on -------------------------
@pytest.mark.parametrize("override, problem", [
    ("model.ffn_hidden_size=-512", "model.ffn_hidden_size: expected >= 1, got int -512"),
    ("optimizer.optimizer=adamw", "optimizer.optimizer: expected a registered optimizer (`plugtron registry list optimizer`), got str 'adamw' (did you mean 'adam'?); registered: adam, sgd"),
    ("optimizer.adam_beta1=1.5", "optimizer.adam_beta1: expected a value in [0, 1), got float 1.5"),
    ("rng.seed=1e25", "rng.seed: expected int, got float 1e+25"),
    ("rng.seed=10000000000000000000000000", "rng.seed: expected int (64-bit), got int 10000000000000000000000000"),
    ("rng.seed=4294967296", "rng.seed: expected a value in [0, 4294967295], got int 4294967296"),
])
def test_values_that_crashed_training(override, problem):
    assert _problems(override) == [f"  {problem}"]


def test_negative_null_tokenizer_vocab():
    assert _problems("tokenizer.tokenizer_type=NullTokenizer", "tokenizer.vocab_size=-5") == [
        "  tokenizer.vocab_size: expected >= 1, got int -5"]


# ---- ranges (the list) -----------------------------------------------------------------
@pytest.mark.parametrize("override, rule", [
    ("model.kv_channels=0", ">= 1"), ("model.num_query_groups=0", ">= 1"), ("model.vocab_size=-1", ">= 1"),
    ("model.seq_length=0", ">= 1"), ("train.micro_batch_size=0", ">= 1"), ("train.global_batch_size=-16", ">= 1"),
    ("logger.log_interval=0", ">= 1"), ("checkpoint.save_interval=0", ">= 1"), ("train.eval_interval=-1", ">= 0"),
    ("model.hidden_dropout=1.5", "a value in [0, 1]"), ("model.attention_dropout=-0.1", "a value in [0, 1]"),
    ("model.init_method_std=-0.02", ">= 0"), ("model.layernorm_epsilon=-1e-5", "> 0"),
    ("model.rotary_base=-10000", "> 0"), ("model.rotary_percent=0", "a value in (0, 1]"),
    ("model.rotary_percent=1.5", "a value in (0, 1]"),
    ("optimizer.lr=-1e-3", ">= 0"), ("optimizer.min_lr=-1", ">= 0"), ("optimizer.weight_decay=-0.1", ">= 0"),
    ("optimizer.adam_eps=-1e-8", "> 0"), ("optimizer.clip_grad=-1", ">= 0"), ("optimizer.adam_beta2=1.0", "a value in [0, 1)"),
    ("scheduler.lr_warmup_iters=-5", ">= 0"), ("peft.dim=0", ">= 1"), ("peft.dim=-8", ">= 1"),
    ("train.exit_signal=SIGKILL", "one of 'SIGTERM'"),
    ("model.moe_router_load_balancing_type=bogus", "one of 'aux_loss'"),
    ("model.moe_router_load_balancing_type=[aux_loss, bogus]", "one of 'aux_loss'"),
    ("model.params_dtype=float64", "a dtype name (bfloat16, float16, float32)"),
])
def test_out_of_range_and_outside_the_set(override, rule):
    path = override.split("=")[0]
    lines = _problems(override)
    assert any(line.startswith(f"  {path}: expected {rule}") for line in lines), lines


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e400", "nan", "'1e-3'"])
def test_non_finite_or_quoted_numbers(value):
    lines = _problems(f"optimizer.lr={value}")
    assert lines[0].startswith("  optimizer.lr: expected a finite float, got") or \
        lines[0].startswith("  optimizer.lr: expected float, got str"), lines


def test_non_finite_in_a_yaml_file(tmp_path):
    (tmp_path / "c.yaml").write_text("optimizer:\n  lr: .nan\nmodel:\n  hidden_dropout: .inf\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "c.yaml"))
    assert "optimizer.lr: expected a finite float, got float nan" in str(info.value)
    assert "model.hidden_dropout: expected a finite float, got float inf" in str(info.value)


def test_non_finite_set_in_python_is_refused_by_validate():
    cfg = load_config()
    cfg.optimizer.lr = float("nan")
    with pytest.raises(ConfigError, match=r"optimizer.lr: expected (>= 0|a finite float)"):
        cfg.validate(world_size=1)


# ---- cross-field rules ----------------------------------------------------------------------------
def test_query_groups_must_divide_heads():
    assert "  model.num_query_groups: 3 does not divide num_attention_heads 4" in _problems("model.num_query_groups=3")


def test_more_expert_ranks_than_experts():
    lines = _problems("model.num_moe_experts=2", "model.expert_model_parallel_size=4", "train.global_batch_size=16",
                      world_size=4)
    assert any(line.startswith("  model.expert_model_parallel_size: 4 does not divide num_moe_experts 2") for line in lines)


def test_bad_enum_megatron_checks_with_key_error():
    lines = _problems("model.cuda_graph_scope=bogus")
    assert lines[0].startswith("  model.cuda_graph_scope: expected names from 'full', 'full_iteration', 'attn'")


# ---- lists are lists ------------------------------------------------------------------------------
@pytest.mark.parametrize("override, problem", [
    ("dataset.blend=/data/wiki_text_document",
     "dataset.blend: expected a list (write [/data/wiki_text_document] for a single item), got str '/data/wiki_text_document'"),
    ("peft.target_modules=linear_qkv",
     "peft.target_modules: expected a list (write [linear_qkv] for a single item), got str 'linear_qkv'"),
    ("profiling.profile_ranks={a: 1}", "profiling.profile_ranks: expected a list, got dict {'a': 1}"),
    ("dataset.blend={a: 1}", "dataset.blend: expected a list, got dict {'a': 1}"),
    ("plugins.x.options=[1]", "plugins.x.options: expected a mapping, got list [1]"),
])
def test_a_string_or_mapping_never_becomes_a_list(override, problem):
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert f"  {problem}" in str(info.value).splitlines()


def test_one_element_lists_and_unions_still_work():
    cfg = load_config(None, ["dataset.blend=[/data/a]", "model.moe_layer_freq=2", "model.window_size=[4, 0]"])
    assert cfg.dataset.blend == ["/data/a"] and cfg.model.moe_layer_freq == 2 and cfg.model.window_size == (4, 0)


# ---- config show refuses what train refuses ---------------------------------------------------------
@pytest.mark.parametrize("override, problem", [
    ("dataset.blend=[]", "dataset.blend: empty list"),
    ("dataset.blend=['-1', /data/a, '2', /data/b]", "dataset.blend: weights must be positive, got [-1.0]"),
    ("dataset.blend=['0', /data/a]", "dataset.blend: weights must be positive, got [0.0]"),
    ("dataset.split='1,2,3,4'", "dataset.split: '1,2,3,4' is not 1 to 3 comma-separated"),
    ("dataset.split=abc", "dataset.split: 'abc' is not 1 to 3"),
    ("model.vocab_size=100", "model.vocab_size: 100 is smaller than the tokenizer's 257 ids (ByteLevelTokenizer)"),
])
def test_validate_checks_data_settings_without_files(override, problem):
    lines = _problems(override)
    assert any(line.startswith(f"  {problem}") for line in lines), lines


def test_world_size_from_the_environment(monkeypatch):
    for bad in ("two", "0", "-1", ""):
        monkeypatch.setenv("WORLD_SIZE", bad)
        with pytest.raises(ConfigError, match="WORLD_SIZE: expected a positive integer"):
            load_config().validate()


def test_plugins_list_reads_the_config_as_train_does():
    from plugtron.cli.plugin_list import describe_plugins

    with pytest.raises(ConfigError, match="train.manual_gc: expected bool \\(true or false\\), got str 'no'"):
        describe_plugins(None, ["train.manual_gc=no"])
    with pytest.raises(ConfigError, match="train.manual_gc_interval: expected >= 0, got int -1"):
        describe_plugins(None, ["train.manual_gc=true", "train.manual_gc_interval=-1"])
    with pytest.raises(ConfigError, match="modle: unknown key \\(did you mean 'model'\\?\\)"):
        describe_plugins(None, ["modle.x=1"])
    rows = {r["name"]: r for r in describe_plugins(None, ["train.manual_gc=true"])[0]}
    assert rows["manual_gc"]["enabled"] and not rows["preemption"]["enabled"]


# ---- the documented table is the code's table -------------------------------------------------------
def test_docs_config_md_lists_the_rule_table():
    doc = (ROOT / "docs" / "config.md").read_text()
    assert table_markdown() in doc, "regenerate the table: python -c 'from plugtron.config.rules import " \
                                    "table_markdown; print(table_markdown())'"
    assert len(RULES) > 80
