"""Mamba-2 against ``transformers`` (fp32): a tiny random ``Mamba2ForCausalLM`` (random norms, A, D, dt
bias; vocabulary not a multiple of the padding; untied output layer, the only one transformers 4.57 saves
as safetensors) imports with logits within 1e-5, exports back bit for bit, decodes greedily like
``generate`` and takes the same first training step as a transformers loop; variants Megatron-Core would
compute differently are refused naming the key. The forward runs plugtron's pure-PyTorch Mamba kernels."""

import pytest
import torch

import transformers  # noqa: F401  (the test extra installs it; these tests must run, never skip)

from _hf_models import megatron_logits, tokens
from _tokenizer_files import train_bpe

VOCAB = 301  # padded to 304 on import: padding rows are never compared
TOL = 1e-5
SMALL = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_heads=8, head_dim=16, expand=2, n_groups=1,
             state_size=16, chunk_size=16, layer_norm_epsilon=1e-5)


def _mamba2(seed=0, **kw):
    import transformers as T

    torch.manual_seed(seed)
    model = T.Mamba2ForCausalLM(T.Mamba2Config(**{**SMALL, **kw})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "norm_f.weight")):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith(("A_log", "dt_bias", "D")):
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from plugtron.providers.hf import AutoBridge

    root = tmp_path_factory.mktemp("mamba2")
    model = _mamba2()
    model.save_pretrained(root / "hf", safe_serialization=True)
    train_bpe(str(root / "hf"), vocab_size=VOCAB)  # recorded by the import: generate reads it
    AutoBridge.import_ckpt(str(root / "hf"), str(root / "mcore"))
    AutoBridge.export_ckpt(str(root / "mcore"), str(root / "exported"))
    return model, root / "hf", root / "mcore", root / "exported"


def test_logits_match_transformers(imported):
    from plugtron.providers.hf import megatron_side as ms

    model, _, ckpt, _ = imported
    toks = tokens(vocab=VOCAB, seq=40)  # 40 tokens: several of transformers' 16-token chunks
    with torch.no_grad():
        ref = model(toks).logits
    with ms.megatron_world(1):
        _, mc = ms.load_model(ckpt)
        got = megatron_logits(mc, toks)
    assert got.shape[-1] == 304
    diff = (got[..., :VOCAB] - ref).abs().max().item()
    print(f"mamba2: max |logit diff| = {diff:.2e}")
    assert diff <= TOL, diff


def test_export_round_trip_is_exact(imported):
    import transformers as T
    from safetensors.torch import load_file

    model, hf_dir, _, out = imported
    original, exported = load_file(hf_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert sorted(exported) == sorted(original)
    assert all(torch.equal(exported[k], t) and exported[k].dtype == t.dtype for k, t in original.items())
    a, b = T.AutoConfig.from_pretrained(hf_dir).to_dict(), T.AutoConfig.from_pretrained(out).to_dict()
    for key in ("architectures", "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_heads", "head_dim",
                "expand", "n_groups", "state_size", "conv_kernel", "layer_norm_epsilon", "tie_word_embeddings"):
        assert a.get(key) == b.get(key), key
    reloaded = T.Mamba2ForCausalLM.from_pretrained(out).eval()
    toks = tokens(vocab=VOCAB, seq=40)
    with torch.no_grad():
        assert torch.equal(reloaded(toks).logits, model(toks).logits)


def test_greedy_generation_equals_transformers(imported):
    """plugtron's greedy decoding (the whole prefix through Megatron each step) equals transformers'
    ``generate`` (its recurrent cache) for 24 tokens."""
    from plugtron.inference.generate import GenerationSettings, generate_ids, open_checkpoint

    model, _, ckpt, _ = imported
    n, text = 24, "the cat sat on the mat and"
    with open_checkpoint(str(ckpt)) as loaded:
        tok = loaded.tokenizer
        prompt = tok.tokenize(text)
        with torch.no_grad():
            ref = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, eos_token_id=tok.eod,
                                 pad_token_id=tok.eod)[0, len(prompt):].tolist()
        got = generate_ids(loaded.model, prompt, GenerationSettings(max_new_tokens=n), loaded.provider.vocab_size,
                           loaded.provider.seq_length, stop_id=tok.eod)
    assert len(ref) >= 8, ref  # enough tokens to compare
    assert got == ref


@pytest.mark.parametrize("change, message", [
    (dict(n_groups=2), r"n_groups=2 is not supported: transformers' gated RMSNorm"),
    (dict(layer_norm_epsilon=1e-6), r"layer_norm_epsilon=1e-06 is not supported"),
    (dict(time_step_limit=(0.0, 1.0)), r"time_step_limit=.* is not supported"),
    (dict(use_bias=True), r"use_bias=true is not supported"),
])
def test_unsupported_variants_are_refused_naming_the_key(change, message):
    import transformers as T

    from plugtron.providers.hf.configs import family_for
    from plugtron.providers.hf.errors import UnsupportedArchitecture

    cfg = T.Mamba2Config(**{**SMALL, **change}).to_dict()
    with pytest.raises(UnsupportedArchitecture, match=message):
        family_for("Mamba2ForCausalLM").to_provider(cfg)


def test_hybrid_models_are_not_exported_as_mamba2():
    from plugtron.providers.hf.configs import hf_config
    from plugtron.providers.hf.errors import UnsupportedArchitecture
    from plugtron.providers.nemotron_h import NemotronH_4B

    p = NemotronH_4B()
    with pytest.raises(UnsupportedArchitecture, match=r"has attention/MLP layers; Mamba2ForCausalLM holds Mamba layers only"):
        hf_config(p)


def test_import_into_tp2_is_refused_before_any_work(imported, tmp_path):
    from plugtron.providers.hf import AutoBridge
    from plugtron.providers.hf.errors import ConversionError

    _, hf_dir, _, _ = imported
    with pytest.raises(ConversionError, match=r"Mamba2ForCausalLM imports at TP=1 only \(Megatron splits a Mamba layer's "
                                              r"in_proj per part"):
        AutoBridge.import_ckpt(str(hf_dir), str(tmp_path / "out"), tensor_model_parallel_size=2)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_first_step_equals_a_transformers_loop(tmp_path):
    """Loss and gradient norm of plugtron's first step from the import equal a plain transformers step on the
    same batch (vocabulary 256: no padded logits; Megatron's backward through plugtron's CPU Mamba kernels)."""
    import yaml

    from plugtron.config import load_config
    from plugtron.plugin_manager import PluginManager
    from plugtron.providers.hf import AutoBridge
    from plugtron.training import train
    from test_hf_dense_families import FirstBatch

    vocab = 256
    model = _mamba2(vocab_size=vocab).train()
    model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    AutoBridge.import_ckpt(str(tmp_path / "hf"), str(tmp_path / "base"))
    run_model = yaml.safe_load((tmp_path / "base" / "iter_0000000" / "run_config.yaml").read_text())["model"]
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({"model": run_model}))
    pm, first = PluginManager(), FirstBatch()
    pm.register("first_batch", first)
    train(load_config(str(tmp_path / "model.yaml"), [
        "dataset.mock=true", "tokenizer.tokenizer_type=NullTokenizer", f"tokenizer.vocab_size={vocab - 1}",
        "model.seq_length=32", "train.train_iters=1", "train.global_batch_size=2", "train.micro_batch_size=2",
        "train.eval_interval=null", "scheduler.lr_warmup_iters=0", "optimizer.clip_grad=1000.0", "logger.log_interval=1",
        f"checkpoint.pretrained_checkpoint={tmp_path / 'base'}"]), plugin_manager=pm)
    toks, labels = first.inputs
    logits = model(toks).logits  # Megatron's labels are the next tokens: no shift here
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab).float(), labels.reshape(-1))
    loss.backward()
    grad_norm = torch.norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    got_loss, got_norm = first.metrics
    print(f"mamba2: loss {got_loss:.6f} vs {loss.item():.6f}; grad norm {got_norm:.6f} vs {grad_norm.item():.6f}")
    assert abs(got_loss - loss.item()) <= 1e-5
    assert abs(got_norm - grad_norm.item()) <= 1e-5 * max(1.0, grad_norm.item())
