"""Bad Hugging Face input is one clear error naming the file/tensor; local-only hub resolution;
sharded safetensors in and out; the ``plugtron convert`` CLI."""

import json
import re
import shutil

import pytest
import torch

from _hf_models import VOCAB, build, megatron_logits, save, tokens

import transformers  # noqa: E402,F401  (the test extra installs it; these tests must run, never skip)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return save(build("llama"), tmp_path_factory.mktemp("llama") / "hf")


def _copy_with(src, dst, drop=(), add=None, config=None):
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True)
    tensors = {k: v for k, v in load_file(src / "model.safetensors").items() if k not in drop}
    tensors.update(add or {})
    save_file(tensors, str(dst / "model.safetensors"))
    cfg = json.loads((src / "config.json").read_text())
    cfg.update(config or {})
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def _import_error(path, tmp_path):
    from plugtron.errors import PlugtronError
    from plugtron.providers.hf import AutoBridge

    with pytest.raises(PlugtronError) as err:
        AutoBridge.import_ckpt(str(path), str(tmp_path / "out"))
    return str(err.value)


def test_missing_tensor_is_named(llama_dir, tmp_path):
    bad = _copy_with(llama_dir, tmp_path / "m", drop=("model.layers.1.mlp.up_proj.weight",))
    msg = _import_error(bad, tmp_path)
    assert "'model.layers.1.mlp.up_proj.weight' is missing" in msg and "linear_fc1" in msg


def test_shape_mismatch_names_tensor_and_shapes(llama_dir, tmp_path):
    bad = _copy_with(llama_dir, tmp_path / "s", config={"intermediate_size": 80})
    msg = _import_error(bad, tmp_path)
    assert "'model.layers.0.mlp.gate_proj.weight' has shape (96, 64), expected (80, 64)" in msg


def test_leftover_tensor_is_an_error(llama_dir, tmp_path):
    bad = _copy_with(llama_dir, tmp_path / "x", add={"model.layers.0.self_attn.q_norm.weight": torch.ones(16)})
    assert "model.layers.0.self_attn.q_norm.weight" in _import_error(bad, tmp_path)


def test_unsupported_architecture_and_option(llama_dir, tmp_path):
    bert = _copy_with(llama_dir, tmp_path / "b", config={"architectures": ["BertForMaskedLM"], "model_type": "bert"})
    msg = _import_error(bert, tmp_path)
    assert "BertForMaskedLM" in msg and "LlamaForCausalLM" in msg
    yarn = _copy_with(llama_dir, tmp_path / "y", config={"rope_scaling": {"rope_type": "yarn", "factor": 4.0}})
    assert "rope_scaling" in _import_error(yarn, tmp_path)


def test_hub_id_resolves_only_from_local_cache(llama_dir, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    msg = _import_error("some-org/some-model", tmp_path)
    assert "no local copy" in msg and "never downloads" in msg
    from plugtron.providers.hf.files import resolve_local

    snap = tmp_path / "hf_home" / "hub" / "models--some-org--some-model" / "snapshots" / "abc123"
    shutil.copytree(llama_dir, snap)
    assert resolve_local("some-org/some-model") == snap


def test_sharded_in_and_out_through_the_cli(tmp_path):
    import transformers as T

    from plugtron.cli import main
    from plugtron.providers.hf import megatron_side as ms

    model = build("qwen2")
    src = save(model, tmp_path / "hf", max_shard_size="60KB")
    assert (src / "model.safetensors.index.json").is_file()
    assert main(["convert", "import-hf", str(src), str(tmp_path / "mc")]) == 0
    toks = tokens()
    with ms.megatron_world(1):
        _, mc = ms.load_model(tmp_path / "mc")
        got = megatron_logits(mc, toks)[..., :VOCAB]
    with torch.no_grad():
        ref = model(toks).logits
    assert (got - ref).abs().max() <= 1e-4
    assert main(["convert", "export-hf", str(tmp_path / "mc"), str(tmp_path / "out"), "--max-shard-gb", "0.00006"]) == 0
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    reloaded = T.AutoModelForCausalLM.from_pretrained(tmp_path / "out", attn_implementation="eager").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(toks).logits, ref)


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    from plugtron.cli import main

    assert main(["convert", "import-hf", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "plugtron: error:" in err and "nope: no such directory" in err and "Traceback" not in err
    assert main(["convert", "export-hf", str(tmp_path), str(tmp_path / "hf")]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_bf16_checkpoint_round_trips_bit_exact(tmp_path):
    from safetensors.torch import load_file

    from plugtron.providers.hf import AutoBridge

    src = save(build("mistral").to(torch.bfloat16), tmp_path / "hf")
    AutoBridge.import_ckpt(str(src), str(tmp_path / "mc"))  # trained in fp32: bf16 -> fp32 is exact
    AutoBridge.export_ckpt(str(tmp_path / "mc"), str(tmp_path / "out"))
    a, b = load_file(src / "model.safetensors"), load_file(tmp_path / "out" / "model.safetensors")
    assert sorted(a) == sorted(b)
    assert all(b[k].dtype == torch.bfloat16 and torch.equal(a[k], b[k]) for k in a)


def test_gpt2_checkpoint_without_transformer_prefix(tmp_path):
    """The hub's original ``gpt2`` weights are a GPT2Model state dict (no ``transformer.`` prefix,
    with the causal-mask buffers ``attn.bias``/``attn.masked_bias``)."""
    from safetensors.torch import load_file, save_file

    from plugtron.providers.hf import AutoBridge
    from plugtron.providers.hf import megatron_side as ms

    model = build("gpt2")
    src = save(model, tmp_path / "hf")
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(src / "model.safetensors").items()}
    tensors["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    tensors["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(tensors, str(src / "model.safetensors"))
    AutoBridge.import_ckpt(str(src), str(tmp_path / "mc"))
    toks = tokens()
    with ms.megatron_world(1):
        _, mc = ms.load_model(tmp_path / "mc")
        got = megatron_logits(mc, toks)[..., :VOCAB]
    with torch.no_grad():
        assert (got - model(toks).logits).abs().max() <= 1e-4


def test_convert_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom plugtron.cli import main\ntry:\n    main(['convert', 'import-hf', '--help'])\n"
            "except SystemExit:\n    pass\nprint('torch imported:', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HF_DIR" in out and out.strip().endswith("torch imported: False"), out


@pytest.mark.parametrize("vocab, divisor, same_up_to", [
    (32000, 32, 8), (128256, 32, 8), (151936, 16, 8), (250, 32, 8), (50257, 64, 2), (257, 128, 1)])
def test_vocab_padding_is_the_same_at_every_tensor_parallel_size(vocab, divisor, same_up_to):
    """A converted checkpoint has the same tensor shapes at TP=1 and TP=2 where the vocabulary allows
    (it loads at any padding - rows load by index, padding logits are masked - but equal shapes keep
    every tensor, the optimizer's included, identical across layouts): the padding multiple is
    divisor x TP, so the divisor is chosen to make the padded size TP-independent."""
    from plugtron.providers.hf.bridge import tp_independent_vocab_divisor

    assert tp_independent_vocab_divisor(vocab) == divisor
    padded = {tp: -(-vocab // (divisor * tp)) * divisor * tp for tp in (1, 2, 4, 8) if tp <= same_up_to}
    assert len(set(padded.values())) == 1 and padded[1] - vocab < 128


# ---- issue 16: junk in a Hugging Face folder is one clear error naming the file ---------------------
@pytest.mark.parametrize("config, match", [
    ("[]", r"config.json: expected a JSON object of model settings, got a list"),
    ('{"architectures": "LlamaForCausalLM"', r"config.json: cannot read \(JSONDecodeError"),
    ("\udcff", r"config.json: cannot read \(UnicodeDecodeError"),
    ('{"architectures": [{"x": 1}]}', r"architectures=.*expected a list of class names"),
])
def test_unreadable_config_json(llama_dir, tmp_path, config, match):
    bad = _copy_with(llama_dir, tmp_path / "c")
    (bad / "config.json").write_bytes(config.encode("utf-8", "surrogateescape"))
    assert re.search(match, _import_error(bad, tmp_path))


@pytest.mark.parametrize("key, value", [("hidden_size", "abc"), ("num_hidden_layers", 2.5), ("vocab_size", -3),
                                        ("intermediate_size", True), ("rms_norm_eps", "tiny"), ("rope_theta", "1e4"),
                                        ("head_dim", "16"), ("rope_scaling", [1])])
def test_non_numeric_size_names_the_key(llama_dir, tmp_path, key, value):
    bad = _copy_with(llama_dir, tmp_path / "n", config={key: value})
    msg = _import_error(bad, tmp_path)
    assert f"config.json: {key}=" in msg, msg


def test_garbage_safetensors_and_index_pointing_nowhere(llama_dir, tmp_path):
    bad = _copy_with(llama_dir, tmp_path / "g")
    (bad / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!" + b"\x00" * 64)
    assert "model.safetensors: not a readable safetensors file" in _import_error(bad, tmp_path)
    (bad / "model.safetensors").write_bytes(b"\xff" * 4)
    assert "model.safetensors: not a readable safetensors file" in _import_error(bad, tmp_path)
    index = bad / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}))
    assert "shard(s) named in model.safetensors.index.json are missing" in _import_error(bad, tmp_path)
    index.write_text(json.dumps({"weight_map": ["model.safetensors"]}))
    assert "index.json: not a safetensors index" in _import_error(bad, tmp_path)


def test_truncated_safetensors_names_the_file(llama_dir, tmp_path):
    bad = _copy_with(llama_dir, tmp_path / "t")
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert "model.safetensors" in _import_error(bad, tmp_path)


def test_import_reads_safetensors_only(llama_dir, tmp_path, monkeypatch):
    """Nothing of a Hugging Face folder is unpickled: a pytorch_model.bin next to the safetensors
    is never opened, and reading config + weights works with every unpickler disabled."""
    import pickle

    from plugtron.providers.hf import AutoBridge

    src = _copy_with(llama_dir, tmp_path / "p")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (src / "pytorch_model.bin").write_bytes(pickle.dumps(Evil()))

    def forbidden(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for target, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(target, name, forbidden)
    bridge = AutoBridge.from_hf_pretrained(str(src))
    tensors = bridge.megatron_tensors(bridge.to_megatron_provider())
    assert "embedding.word_embeddings.weight" in tensors and not marker.exists()


# ---- issue 16: conversions never overwrite ----------------------------------------------------------
def test_import_refuses_a_non_empty_directory(llama_dir, tmp_path, capsys):
    from plugtron.checkpointing import layout
    from plugtron.cli import main
    from plugtron.errors import PlugtronError
    from plugtron.providers.hf import AutoBridge

    out = tmp_path / "mc"
    AutoBridge.import_ckpt(str(llama_dir), str(out))
    before = (out / "iter_0000000" / "manifest.json").read_bytes()
    assert main(["convert", "import-hf", str(llama_dir), str(out)]) == 2
    err = capsys.readouterr().err
    assert "mc: not empty" in err and "--overwrite" in err and "Traceback" not in err
    assert (out / "iter_0000000" / "manifest.json").read_bytes() == before
    # --overwrite replaces a previous import: one checkpoint, tracker 0, verified
    assert main(["convert", "import-hf", str(llama_dir), str(out), "--overwrite"]) == 0
    assert layout.complete_iterations(str(out)) == [0] and layout.read_tracker(str(out)) == 0
    layout.verify(str(out / "iter_0000000"))
    assert not any(n.endswith((".staging", ".deleting")) for n in (p.name for p in out.iterdir()))
    # ... but never training checkpoints, which would keep winning on load
    shutil.copytree(out / "iter_0000000", out / "iter_0000010")
    (out / "iter_0000010" / "hf_config.json").unlink()
    layout.write_tracker(str(out), 10)
    with pytest.raises(PlugtronError, match=r"holds training checkpoints \(iter_0000010\).*even with --overwrite"):
        AutoBridge.import_ckpt(str(llama_dir), str(out), overwrite=True)
    assert layout.read_tracker(str(out)) == 10 and (out / "iter_0000010").is_dir()


def test_export_refuses_a_non_empty_directory(llama_dir, tmp_path):
    from plugtron.errors import PlugtronError
    from plugtron.providers.hf import AutoBridge

    AutoBridge.import_ckpt(str(llama_dir), str(tmp_path / "mc"))
    other = tmp_path / "other_model"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "other"}')
    (other / "model-00001-of-00002.safetensors").write_bytes(b"old shard")
    (other / "tokenizer.json").write_text("{}")
    with pytest.raises(PlugtronError, match=r"other_model: not empty.*--overwrite"):
        AutoBridge.export_ckpt(str(tmp_path / "mc"), str(other))
    assert (other / "config.json").read_text() == '{"model_type": "other"}'
    AutoBridge.export_ckpt(str(tmp_path / "mc"), str(other), overwrite=True)
    assert json.loads((other / "config.json").read_text())["model_type"] == "llama"
    assert sorted(p.name for p in other.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    with pytest.raises(PlugtronError, match="holds a plugtron checkpoint"):
        AutoBridge.export_ckpt(str(tmp_path / "mc"), str(tmp_path / "mc"), overwrite=True)
