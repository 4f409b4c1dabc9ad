"""What every newly supported Hugging Face family is checked for (used by test_gemma3.py, test_phi3.py):
import -> logits equal transformers' (fp32) -> export bit-exact; first training step (loss and
grad norm) equal a plain transformers loop on the same batch; greedy generation equal transformers'
``generate``; LoRA by HF and Megatron names exported to HF PEFT loads with equal logits."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from _hf_models import build, megatron_logits, save, tokens
from _tokenizer_files import train_bpe

LOGIT_TOL = 1e-5
VOCAB = 301  # odd: never a multiple of the padding (padded to 384); a byte-level BPE needs >= 257


def convert(family: str, root: Path):
    """(HF model, HF dir, plugtron checkpoint, exported HF dir) of the family's tiny random model
    with a tokenizer of its own (so ``generate`` can open the checkpoint)."""
    from plugtron.providers.hf import AutoBridge

    model = build(family, vocab=VOCAB)
    hf_dir = save(model, root / "hf")
    train_bpe(str(hf_dir), vocab_size=VOCAB)
    AutoBridge.import_ckpt(str(hf_dir), str(root / "mcore"))
    AutoBridge.export_ckpt(str(root / "mcore"), str(root / "exported"))
    return model, hf_dir, root / "mcore", root / "exported"


def logits_diff(model, ckpt: Path, toks=None) -> float:
    from plugtron.providers.hf import megatron_side as ms

    toks = tokens(vocab=VOCAB) if toks is None else toks
    with torch.no_grad():
        ref = model(toks).logits
    with ms.megatron_world(1):
        _, mc = ms.load_model(ckpt)
        got = megatron_logits(mc, toks)
    assert got.shape[-1] > VOCAB  # padded vocabulary; padding rows are not compared
    return (got[..., :VOCAB] - ref).abs().max().item()


def assert_export_exact(model, hf_dir: Path, out: Path) -> None:
    import transformers as T
    from safetensors.torch import load_file

    original, exported = load_file(hf_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert sorted(exported) == sorted(original)
    for name, t in original.items():
        assert exported[name].dtype == t.dtype and torch.equal(exported[name], t), name
    reloaded = T.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    toks = tokens(vocab=VOCAB)
    with torch.no_grad():
        assert torch.equal(reloaded(toks).logits, model(toks).logits)


def first_step_parity(family: str, root: Path, steps: int = 3):
    """(plugtron loss, HF loss, plugtron grad norm, HF grad norm, later losses) of the first step on one
    batch of mock data. The vocabulary is 256, a multiple of 128: no padded rows, so the padded-
    vocabulary softmax question (another issue) does not enter."""
    from plugtron.config import load_config
    from plugtron.providers.hf import AutoBridge
    from plugtron.training import step
    from plugtron.training.trainer import Trainer

    hf = build(family, vocab=256, positions=64)
    save(hf, root / "hf")
    AutoBridge.import_ckpt(str(root / "hf"), str(root / "base"))
    model = yaml.safe_load((root / "base" / "iter_0000000" / "run_config.yaml").read_text())["model"]
    (root / "model.yaml").write_text(yaml.safe_dump({"model": model}))
    cfg = load_config(str(root / "model.yaml"), [
        f"checkpoint.pretrained_checkpoint={root / 'base'}", "dataset.mock=true", "tokenizer.tokenizer_type=NullTokenizer",
        "tokenizer.vocab_size=255", "model.seq_length=32", "train.micro_batch_size=2", "train.global_batch_size=2",
        f"train.train_iters={steps}", "train.eval_interval=null", "optimizer.clip_grad=0.0", "optimizer.lr=1e-3",
        "scheduler.lr_warmup_iters=0", "logger.run_summary=false", "logger.metrics_file=false"])
    trainer = Trainer(cfg)
    try:
        seen = []
        source = trainer.data.train_iterators[0]
        trainer.data.train_iterators[0] = (seen.append(b) or b for b in source)
        loss, ok, grad_norm, _, _ = step.train_step(cfg, trainer.state.model, trainer.state.optimizer,
                                                 trainer.state.scheduler, trainer.data.train_iterators)
        later = [step.train_step(cfg, trainer.state.model, trainer.state.optimizer, trainer.state.scheduler,
                                 trainer.data.train_iterators)[0].item() for _ in range(steps - 1)]
    finally:
        trainer.close()
    batch = seen[0]
    hf.train()
    logits = hf(input_ids=batch["tokens"].cpu()).logits
    per_token = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                  batch["labels"].cpu().reshape(-1), reduction="none")
    mask = batch["loss_mask"].cpu().reshape(-1).float()
    hf_loss = (per_token * mask).sum() / mask.sum()
    hf_loss.backward()
    hf_norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in hf.parameters() if p.grad is not None))
    assert ok
    return loss.item(), hf_loss.item(), float(grad_norm), hf_norm.item(), later


def greedy_matches(model, ckpt: Path, prompt, n: int = 24):
    """(plugtron's greedy ids, transformers' greedy ids) after ``prompt``."""
    from plugtron.inference.generate import GenerationSettings, generate_ids, open_checkpoint

    with torch.no_grad():
        ref = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, min_new_tokens=n,
                             pad_token_id=0)[0, len(prompt):].tolist()
    with open_checkpoint(str(ckpt)) as loaded:
        got = generate_ids(loaded.model, list(prompt), GenerationSettings(max_new_tokens=n), loaded.provider.vocab_size,
                           loaded.provider.seq_length)
    return got, ref


def lora_export_loads_in_peft(family: str, root: Path, tmp: Path, targets: str) -> float:
    """Train LoRA (``peft.target_modules=targets``) 3 steps on the family's SFT base; export the
    adapters in HF PEFT's layout; return max |logit diff| of PeftModel vs the adapted Megatron model."""
    import transformers as T
    from peft import PeftModel

    from _peft_fixtures import VOCAB as PEFT_VOCAB, config, ids, make_base
    from plugtron.cli import main as plugtron_main
    from plugtron.providers.peft.merge import adapted_model
    from plugtron.training import train

    make_base(root, family)
    run = train(config(root, ["train.train_iters=3", f"peft.target_modules={targets}", f"checkpoint.save={tmp / 'run'}"]))
    assert len(run["losses"]) == 3 and all(torch.isfinite(torch.as_tensor(run["losses"])))
    toks = ids()
    with adapted_model(str(tmp / "run")) as (_cfg, _provider, model, _path):
        adapted = megatron_logits(model, toks)[..., :PEFT_VOCAB]
    assert plugtron_main(["peft", "export-hf", str(tmp / "run"), str(tmp / "adapter"), "--base-model", str(root / "hf")]) == 0
    base = T.AutoModelForCausalLM.from_pretrained(root / "hf", attn_implementation="eager")
    with_adapter = PeftModel.from_pretrained(base, str(tmp / "adapter")).eval()
    with torch.no_grad():
        return (with_adapter(toks).logits - adapted).abs().max().item()


def parallel_losses(family: str, root: Path):
    """Two steps' losses from the family's imported tiny model in one process, at TP=2 and at PP=2
    (two gloo processes, both layouts in one launch of ``tests/_dist_train.py``): ``{"one": [...], "tp": [...], "pp": [...]}``."""
    from helpers import torchrun_runs
    from plugtron.config import load_config
    from plugtron.providers.hf import AutoBridge
    from plugtron.training import train

    save(build(family, vocab=256, positions=64), root / "hf")
    AutoBridge.import_ckpt(str(root / "hf"), str(root / "base"))
    common = [f"checkpoint.pretrained_checkpoint={root / 'base'}", "dataset.mock=true",
              "tokenizer.tokenizer_type=NullTokenizer", "tokenizer.vocab_size=255", "model.seq_length=32",
              "train.micro_batch_size=2", "train.global_batch_size=4", "train.train_iters=2", "train.eval_interval=null",
              "optimizer.clip_grad=0.0", "optimizer.lr=1e-3", "scheduler.lr_warmup_iters=0", "logger.log_interval=1"]
    out = {"one": train(load_config(None, common))["losses"]}
    tp, pp = torchrun_runs(root, "layouts", [common + ["model.tensor_model_parallel_size=2"],
                                             common + ["model.pipeline_model_parallel_size=2"]])  # one launch
    return {**out, "tp": tp["losses"], "pp": pp["losses"]}
