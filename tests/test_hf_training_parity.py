"""Training parity with ``transformers``: a tiny random Hugging Face model imported with plugtron's
import, trained by plugtron and by a plain PyTorch loop over the HF model on the same batches
(recorded from plugtron's data iterator) with the same optimizer (AdamW, constant lr 1e-3, fp32, no
clipping, Megatron's no-decay rule), agrees step by step: loss within 1e-5, grad norm within 1e-4.
The vocabularies (257, 500) are not multiples of the padding, so the padding rows plugtron adds
must not change the function; the exported model is the one plugtron trained. TP=2 runs in
test_hf_training_parity_tp2.py (slow)."""

import pytest
import torch

import transformers  # noqa: F401  (the test extra installs it; these tests must run, never skip)

from _hf_models import build, save
from _hf_parity import export_matches, hf_run, micro_batch_mean_loss, overrides, plugtron_run, worst

STEPS = 20
LOSS_TOL, NORM_TOL, LOGIT_TOL = 1e-5, 1e-4, 1e-5


def _import(root, family, vocab):
    from plugtron.providers.hf import AutoBridge

    hf = save(build(family, vocab=vocab), root / "hf")
    AutoBridge.import_ckpt(str(hf), str(root / "ckpt"))
    return hf, root / "ckpt"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """``imported(family, vocab)``: (HF dir, plugtron checkpoint), each converted once per module."""
    done = {}

    def get(family, vocab):
        if (family, vocab) not in done:
            done[family, vocab] = _import(tmp_path_factory.mktemp(f"{family}{vocab}"), family, vocab)
        return done[family, vocab]

    return get


# 500 also checks a user's padding other than the import's: the 512-row checkpoint loads into a
# 504-row model (embedding and output rows load by their global index)
@pytest.mark.parametrize("vocab,weight_decay,extra", [(257, 0.0, []), (500, 0.1, ["model.make_vocab_size_divisible_by=8"])])
def test_llama_trains_as_transformers_does(tmp_path, imported, vocab, weight_decay, extra):
    import transformers as T

    hf, ckpt = imported("llama", vocab)
    args = overrides(ckpt, STEPS, weight_decay) + extra + [f"checkpoint.save={tmp_path / 'trained'}"]
    losses, norms, batches = plugtron_run(args)
    model = T.AutoModelForCausalLM.from_pretrained(hf, attn_implementation="eager")
    ref_losses, ref_norms = hf_run(model, batches, weight_decay)
    print(f"vocab {vocab} wd {weight_decay}: plugtron {losses[0]:.6f} .. {losses[-1]:.6f}, HF {ref_losses[0]:.6f} .. "
          f"{ref_losses[-1]:.6f}; max |loss diff| {worst(losses, ref_losses):.2e}, "
          f"max |grad norm diff| {worst(norms, ref_norms):.2e}")
    assert len(losses) == STEPS and losses[-1] < losses[0] - 0.05, losses
    assert worst(losses, ref_losses) <= LOSS_TOL, (losses, ref_losses)
    assert worst(norms, ref_norms) <= NORM_TOL, (norms, ref_norms)

    # export gives the model plugtron trained, which is the HF loop's model to float noise
    export_matches(tmp_path / "trained", tmp_path / "exported", model, vocab, weights_tol=1e-5)


def test_fused_cross_entropy_sees_the_unpadded_vocabulary(imported):
    """Megatron's fused ("native") cross-entropy on a padded vocabulary: the first loss is HF's.
    Only the first: that kernel returns its gradient in bf16 (``fused_cross_entropy.calculate_gradients``),
    so later steps drift from an fp32 loop by ~1e-4 with or without padding (measured: 3e-4 over 8
    steps at vocabulary 512, which needs no padding)."""
    import transformers as T

    hf, ckpt = imported("llama", 257)
    losses, norms, batches = plugtron_run(overrides(ckpt, 1, 0.0) + [
        "model.cross_entropy_loss_fusion=true", "model.cross_entropy_fusion_impl=native"])
    ref_losses, ref_norms = hf_run(T.AutoModelForCausalLM.from_pretrained(hf, attn_implementation="eager"), batches, 0.0)
    print(f"fused CE: |loss diff| {worst(losses, ref_losses):.2e}, grad norm {norms[0]:.6f} vs {ref_norms[0]:.6f}")
    assert worst(losses, ref_losses) <= LOSS_TOL, (losses, ref_losses)
    assert abs(norms[0] - ref_norms[0]) <= 1e-3 * ref_norms[0], (norms, ref_norms)


def test_mixtral_top2_first_steps_match(imported):
    """MoE (4 experts, top-2, Megatron's alltoall dispatcher) on a padded vocabulary. The load-
    balancing loss is off on both sides: HF sums it over the layers' concatenated router logits,
    Megatron per layer, so with it on they are different objectives by design."""
    import transformers as T

    hf, ckpt = imported("mixtral", 257)
    losses, norms, batches = plugtron_run(overrides(ckpt, 3, 0.1) + ["model.moe_aux_loss_coeff=0.0"])
    model = T.AutoModelForCausalLM.from_pretrained(hf, attn_implementation="eager")
    ref_losses, ref_norms = hf_run(model, batches, 0.1)
    print(f"mixtral: max |loss diff| {worst(losses, ref_losses):.2e}, max |grad norm diff| {worst(norms, ref_norms):.2e}")
    assert worst(losses, ref_losses) <= LOSS_TOL, (losses, ref_losses)
    assert worst(norms, ref_norms) <= NORM_TOL, (norms, ref_norms)


def _sft_root(root):
    """Answer-only SFT data of very different answer lengths (1 to 30 loss tokens per example), so
    the two micro batches of a step hold different numbers of loss tokens."""
    import json

    root.mkdir()
    for name, n in (("training", 48), ("validation", 4), ("test", 4)):
        with open(root / f"{name}.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({"input": f"Q{i}: say {i % 5}", "output": "ok " * (i % 10)}) + "\n")
    return root


@pytest.mark.parametrize("per_token", [None, False])
def test_sft_answer_only_with_gradient_accumulation(tmp_path, imported, per_token):
    """Answer-only loss masks, 2 micro batches per step. Default: one token mean over the global
    batch (transformers' Trainer); ``model.calculate_per_token_loss=false``: the mean of the micro
    batches' means, the documented option."""
    import transformers as T

    hf, ckpt = imported("llama", 257)
    steps = 8 if per_token is None else 4
    args = [a for a in overrides(ckpt, steps, 0.1) if not a.startswith("dataset.")]  # SFT: seq_length follows the model
    args += [f"dataset.dataset_root={_sft_root(tmp_path / 'sft')}",
                                          "dataset.do_validation=false", "dataset.do_test=false"]
    if per_token is not None:
        args.append(f"model.calculate_per_token_loss={str(per_token).lower()}")
    losses, norms, batches = plugtron_run(args)
    counts = [[int(b["loss_mask"].sum()) for b in step] for step in batches]
    assert len(counts[0]) == 2 and any(a != b for a, b in counts), counts  # accumulation, unequal micro batches
    model = T.AutoModelForCausalLM.from_pretrained(hf, attn_implementation="eager")
    objective = micro_batch_mean_loss if per_token is False else None
    ref_losses, ref_norms = hf_run(model, batches, 0.1, **({"objective": objective} if objective else {}))
    print(f"SFT per_token={per_token}: max |loss diff| {worst(losses, ref_losses):.2e}, "
          f"max |grad norm diff| {worst(norms, ref_norms):.2e}")
    assert worst(losses, ref_losses) <= LOSS_TOL, (losses, ref_losses)
    assert worst(norms, ref_norms) <= NORM_TOL, (norms, ref_norms)


def test_per_token_loss_keeps_the_moe_aux_loss_scale(imported):
    """``model.calculate_per_token_loss=true`` on pretraining data (every micro batch has the same
    tokens) trains what the default trains, MoE load-balancing loss included (Megatron scales the
    aux loss by the tokens in per-token mode; with the 2-tuple loss form the main loss was not, and
    the step-1 grad norm of this Mixtral went from 1.5 to 12.5)."""
    _, ckpt = imported("mixtral", 257)
    args = overrides(ckpt, 2, 0.0) + ["model.moe_aux_loss_coeff=0.02"]
    default, default_norms, _ = plugtron_run(args)
    per_token, per_token_norms, _ = plugtron_run(args + ["model.calculate_per_token_loss=true"])
    print(f"per token vs default: losses {per_token} {default}, grad norms {per_token_norms} {default_norms}")
    assert worst(per_token, default) <= LOSS_TOL and worst(per_token_norms, default_norms) <= NORM_TOL
