"""Fine-tune from an imported checkpoint: ``checkpoint.pretrained_checkpoint`` loads the converted
weights (the first loss is the imported model's, not a fresh init's) and 5 steps lower the loss;
the fine-tuned training checkpoint (with optimizer state) exports to a model transformers loads."""

import transformers  # noqa: F401  (the test extra installs it; these tests must run, never skip)
import yaml

from _hf_models import build, megatron_logits, save, tokens

STEPS = ["train.train_iters=5", "train.eval_interval=null", "train.global_batch_size=8", "train.micro_batch_size=4",
         "optimizer.lr=3e-3", "scheduler.lr_warmup_iters=0", "logger.log_interval=1"]


def test_finetune_from_imported_checkpoint_learns(tmp_path):
    from plugtron.config import load_config
    from plugtron.providers.hf import AutoBridge
    from plugtron.training import train

    # byte-level tokenizer of the tiny recipe: 257 ids; sequence length 128 as its dataset
    hf = save(build("llama", vocab=257, positions=128), tmp_path / "hf")
    AutoBridge.import_ckpt(str(hf), str(tmp_path / "ckpt"))
    run_config = yaml.safe_load((tmp_path / "ckpt" / "iter_0000000" / "run_config.yaml").read_text())
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump({"model": run_config["model"]}))

    tuned = train(load_config(str(tmp_path / "sft.yaml"), STEPS + [
        f"checkpoint.pretrained_checkpoint={tmp_path / 'ckpt'}", f"checkpoint.save={tmp_path / 'sft'}"]))
    fresh = train(load_config(str(tmp_path / "sft.yaml"), STEPS))
    losses = tuned["losses"]
    print("fine-tune losses:", losses, "fresh init:", fresh["losses"])
    assert len(losses) == 5 and losses[-1] < losses[0] - 0.05, losses
    # the random HF weights (norms ~1 +- 0.2, weights 0.08) give a different first loss than
    # Megatron's init: equal first losses would mean the checkpoint was not loaded
    assert abs(losses[0] - fresh["losses"][0]) > 1e-3, (losses, fresh["losses"])


    # export-hf reads the training checkpoint's model weights (ignoring optimizer/RNG state)
    import torch
    import transformers as T

    from plugtron.providers.hf import megatron_side as ms

    AutoBridge.export_ckpt(str(tmp_path / "sft"), str(tmp_path / "sft_hf"))
    exported = T.AutoModelForCausalLM.from_pretrained(tmp_path / "sft_hf", attn_implementation="eager").eval()
    toks = tokens(vocab=257)
    with ms.megatron_world(1):
        _, mc = ms.load_model(tmp_path / "sft")
        want = megatron_logits(mc, toks)[..., :257]
    with torch.no_grad():
        assert (exported(toks).logits - want).abs().max() <= 1e-4
