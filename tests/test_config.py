"""Config: YAML round trip, strict typing, overrides, all-at-once error messages, validate()."""

import pytest

from plugtron.config import ConfigContainer, from_yaml, load_config, parse_overrides, to_yaml
from plugtron.config import yaml_io
from plugtron.errors import ConfigError


def _errors(*overrides, yaml_text=None, tmp_path=None):
    path = None
    if yaml_text is not None:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path) if path else None, list(overrides))
    return str(info.value)


def test_yaml_round_trip_is_exact():
    cfg = load_config(overrides=["train.train_iters=70", "optimizer.lr=3e-4", "mixed_precision=bf16-mixed"])
    text = to_yaml(cfg)
    again = from_yaml(text)
    assert again == cfg
    assert to_yaml(again) == text
    # ... and after validate() filled in the derived fields
    cfg.validate()
    text2 = to_yaml(cfg)
    assert from_yaml(text2) == cfg and to_yaml(from_yaml(text2)) == text2


def test_yaml12_scalars():
    assert yaml_io.loads("a: 1e-4")["a"] == pytest.approx(1e-4)
    assert yaml_io.loads("a: yes")["a"] == "yes"
    assert yaml_io.loads("a: true")["a"] is True
    assert yaml_io.loads("a: 3")["a"] == 3
    # strings that would read back as something else are quoted on dump
    assert yaml_io.loads(yaml_io.dumps({"s": "1e-4", "t": "true", "u": "null"})) == {"s": "1e-4", "t": "true", "u": "null"}


def test_overrides_are_typed_like_yaml(tmp_path):
    cfg = load_config(overrides=["train.train_iters=100", "optimizer.lr=3e-4", "model.num_layers=2",
                                 "dataset.blend=[a, b]", "train.eval_interval=null"])
    assert cfg.train.train_iters == 100 and isinstance(cfg.optimizer.lr, float) and cfg.optimizer.lr == 3e-4
    assert cfg.model.num_layers == 2 and cfg.dataset.blend == ["a", "b"] and cfg.train.eval_interval is None
    (tmp_path / "c.yaml").write_text("optimizer:\n  lr: 1e-4\ntrain:\n  train_iters: 5\n")
    cfg = load_config(str(tmp_path / "c.yaml"), ["train.train_iters=9"])
    assert cfg.optimizer.lr == 1e-4 and cfg.train.train_iters == 9  # CLI beats YAML


def test_parse_overrides_nesting_and_errors():
    assert parse_overrides(["a.b.c=1", "a.b.d=x"]) == {"a": {"b": {"c": 1, "d": "x"}}}
    with pytest.raises(ConfigError) as info:
        parse_overrides(["novalue", "a..b=1"])
    assert str(info.value) == (
        "command line: 2 errors\n"
        "  override 'novalue': expected dotted.key=value (e.g. train.train_iters=100)\n"
        "  override 'a..b=1': expected dotted.key=value (e.g. train.train_iters=100)"
    )


def test_error_snapshot_typos_and_types(tmp_path):
    text = _errors(yaml_text=(
        "train:\n  trian_iters: 5\n  eval_iters: yes\n  global_batch_size: 8.5\n"
        "optimizer:\n  lr: fast\n"
        "scheduler:\n  lr_decay_style: cosin\n"
        "modle: {}\n"
    ), tmp_path=tmp_path)
    assert text == (
        f"recipe 'tiny' + {tmp_path / 'bad.yaml'}: 6 errors\n"
        "  train.global_batch_size: expected int, got float 8.5\n"
        "  train.eval_iters: expected int, got str 'yes'\n"
        "  train.trian_iters: unknown key (did you mean 'train_iters'?); TrainingConfig has no field 'trian_iters'\n"
        "  optimizer.lr: expected float, got str 'fast'\n"
        "  scheduler.lr_decay_style: expected one of 'constant', 'linear', 'cosine', 'inverse-square-root', 'WSD' "
        "(did you mean 'cosine'?), got str 'cosin'\n"
        "  modle: unknown key (did you mean 'model'?); ConfigContainer has no field 'modle'"
    )


def test_error_snapshot_code_and_dtypes():
    text = _errors("model.init_method=os.system", "model.activation_func=os.system", "model.params_dtype=float8",
                   "plugins.foo.enabled=1", "mixed_precision.bf16=yes")
    assert text == (
        "recipe 'tiny' + command line: 5 errors\n"
        "  model.params_dtype: expected a dtype name (bfloat16, float16, float32), got str 'float8'\n"
        "  model.activation_func: expected one of 'gelu', 'silu', 'relu', 'tanh', 'gelu_tanh', 'squared_relu', 'quick_gelu', "
        "'fast_gelu', got str 'os.system'\n"
        "  model.init_method: cannot be set from a config (it holds code or is derived)\n"
        "  mixed_precision.bf16: expected bool (true or false), got str 'yes'\n"
        "  plugins.foo.enabled: expected bool (true or false), got int 1"
    )


def test_invalid_yaml_names_the_line(tmp_path):
    text = _errors(yaml_text="train:\n  train_iters: [1,\n", tmp_path=tmp_path)
    assert f"{tmp_path / 'bad.yaml'}:3:1: invalid YAML" in text


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(str(tmp_path / "nope.yaml"))


def test_validate_derives():
    cfg = load_config(overrides=["train.global_batch_size=16", "train.micro_batch_size=2", "train.train_iters=50",
                                 "scheduler.lr_warmup_iters=5", "model.tensor_model_parallel_size=2"])
    cfg.validate(world_size=4)
    assert cfg.data_parallel_size == 2 and cfg.num_microbatches == 4
    assert cfg.scheduler.lr_warmup_steps == 5 * 16 and cfg.scheduler.lr_decay_steps == 50 * 16
    assert cfg.scheduler.wd_incr_steps == 50 * 16
    assert cfg.model.vocab_size == 257 and cfg.model.ffn_hidden_size == 4 * cfg.model.hidden_size
    cfg2 = load_config(overrides=["mixed_precision=bf16-mixed"]).validate()
    import torch

    assert cfg2.model.bf16 and cfg2.optimizer.bf16 and cfg2.model.params_dtype == torch.bfloat16


def test_validate_rejects_impossible_combinations_all_at_once():
    cfg = load_config(overrides=["train.global_batch_size=10", "train.micro_batch_size=4",
                                 "model.num_attention_heads=6", "model.tensor_model_parallel_size=4",
                                 "peft.dim=8", "dataset.sequence_length=64", "optimizer.lr=null"])
    with pytest.raises(ConfigError) as info:
        cfg.validate(world_size=4)
    assert str(info.value) == (  # headed by where the config came from, as a structure error is
        "recipe 'tiny' + command line: 5 errors\n"
        "  dataset.sequence_length: 64 differs from model.seq_length 128; set only model.seq_length "
        "(dataset.sequence_length follows it when unset)\n"
        "  train.global_batch_size: 10 is not divisible by micro_batch_size x data-parallel size = 4 x 1 = 4\n"
        "  model.num_attention_heads: 6 is not divisible by tensor_model_parallel_size 4\n"
        "  optimizer.lr: required (e.g. optimizer.lr=3e-4)\n"
        "  peft: requires checkpoint.pretrained_checkpoint (the model the adapters are trained on)"
    )


def test_world_size_must_divide():
    cfg = load_config(overrides=["model.tensor_model_parallel_size=2"])
    with pytest.raises(ConfigError, match=r"model.tensor_model_parallel_size x pipeline_model_parallel_size x context_parallel_size = 2 x 1 x 1 = 2 does not divide the world size 3"):
        cfg.validate(world_size=3)


def test_no_config_value_runs_code(tmp_path):
    (tmp_path / "evil.yaml").write_text("train: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(str(tmp_path / "evil.yaml"))


def test_python_objects_accepted_directly():
    import torch

    from plugtron.config import MixedPrecisionConfig

    cfg = ConfigContainer(mixed_precision=MixedPrecisionConfig(bf16=True, params_dtype=torch.bfloat16))
    assert from_yaml(to_yaml(cfg)).resolved_mixed_precision().params_dtype == torch.bfloat16


def test_batched_p2p_with_virtual_pipeline_is_derived_off_without_cuda(caplog):
    """A derivation of validate() (where `config show` sees it); machine.check only reads the config."""
    import torch

    from plugtron.platform import machine

    cfg = load_config(overrides=["model.pipeline_model_parallel_size=2", "model.virtual_pipeline_model_parallel_size=2"])
    assert cfg.model.batch_p2p_comm
    cfg.validate(world_size=2)
    expected_off = not torch.cuda.is_available()
    assert cfg.model.batch_p2p_comm is not expected_off
    assert ("batch_p2p_comm=false" in caplog.text) is expected_off
    cfg.model.batch_p2p_comm = True  # as if set again after validate(): the check must not rewrite it
    machine.check(cfg)
    assert cfg.model.batch_p2p_comm


def test_peft_section_in_the_guides_python_form():
    """The guide's ``peft=LoraConfig(target_modules=["qkv_proj", "o_proj"], dim=64)`` constructs,
    LoRA by default, and switches the peft plugin on (training with it: tests/test_peft.py)."""
    from plugtron.config import ConfigContainer, LoraConfig, builtin_toggles

    cfg = ConfigContainer(peft=LoraConfig(target_modules=["qkv_proj", "o_proj"], dim=64))
    assert cfg.peft.method == "lora" and cfg.peft.dim == 64 and cfg.peft.alpha == 32
    assert ("peft", "peft") in builtin_toggles()