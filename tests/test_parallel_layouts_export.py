"""Checkpoints from every parallel layout training accepts (TP=2 with sequence parallelism, PP=2,
EP=2; 2 gloo processes, all three runs in one launch) export to Hugging Face, generate, and serve as the base of a LoRA run
whose adapters ``peft merge`` folds in. The exported model computes what the checkpoint's model
computes (logits compared with ``transformers``). The model is a tiny imported Mixtral: MoE, so the
TP=2 run is also the MoE x TP x sequence-parallel combination ``validate()`` accepts, taking steps."""

import pytest
import torch

from _hf_models import build, save
from helpers import torchrun_runs
from plugtron.config import load_config
from plugtron.training import train

VOCAB = 300  # >= 257: the runs train on the bundled corpus with the byte-level tokenizer
RUN = ["train.train_iters=2", "train.eval_interval=null", "train.micro_batch_size=2", "train.global_batch_size=4",
       "model.seq_length=32", "scheduler.lr_warmup_iters=1", "logger.log_interval=1", "optimizer.lr=1e-2",
       "logger.metrics_file=false", "logger.run_summary=false", "logger.log_throughput=false"]
LAYOUTS = {
    "tp2-sp": ["model.tensor_model_parallel_size=2", "model.sequence_parallel=true"],
    "pp2": ["model.pipeline_model_parallel_size=2"],
    "ep2": ["model.expert_model_parallel_size=2"],
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from plugtron.providers.hf import AutoBridge

    root = tmp_path_factory.mktemp("layouts")
    hf_dir = save(build("mixtral", vocab=VOCAB), root / "hf")
    AutoBridge.import_ckpt(str(hf_dir), str(root / "imported"))
    return root / "imported"


def _exported_matches(ckpt, out):
    """Export ``ckpt`` to ``out``; the HF model's logits equal the checkpoint's model's (loaded the
    way ``generate`` loads it), and ``generate`` produces the asked number of tokens."""
    import transformers as T

    from plugtron.inference.generate import GenerationSettings, open_checkpoint
    from plugtron.providers.hf import AutoBridge

    AutoBridge.export_ckpt(str(ckpt), str(out))
    hf = T.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    toks = torch.randint(0, 257, (2, 16), generator=torch.Generator().manual_seed(3))
    with open_checkpoint(str(ckpt)) as loaded:
        pos = torch.arange(toks.shape[1]).expand_as(toks)
        with torch.no_grad():
            ours = loaded.model(toks, pos, None)[..., :VOCAB]
        text = loaded.generate("def ", GenerationSettings(max_new_tokens=4))
    with torch.no_grad():
        theirs = hf(toks).logits
    assert (ours - theirs).abs().max().item() < 1e-4
    assert len(text.encode("utf-8", "surrogateescape")) >= 1


@pytest.fixture(scope="module")
def parallel_runs(imported, tmp_path_factory):
    """layout -> (its run's summary, its checkpoint): every layout's run in one two-process launch."""
    root = tmp_path_factory.mktemp("parallel")
    names = sorted(LAYOUTS)
    got = torchrun_runs(root, "layouts", [RUN + LAYOUTS[name] + [f"checkpoint.pretrained_checkpoint={imported}",
                                                                  f"checkpoint.save={root / name}"] for name in names])
    return {name: (summary, root / name) for name, summary in zip(names, got)}


@pytest.mark.slow
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_export_generate_and_peft_merge_from_a_parallel_checkpoint(parallel_runs, tmp_path, layout):
    from plugtron.providers.peft.merge import merge

    summary, ckpt = parallel_runs[layout]
    assert len(summary["losses"]) == 2 and all(x == x for x in summary["losses"]), summary["losses"]
    _exported_matches(ckpt, tmp_path / "hf")

    # LoRA on top of the parallel checkpoint (one process), merged back: the merge rebuilds that base
    adapters = tmp_path / "lora"
    train(load_config(None, RUN + ["peft.dim=4", "peft.target_modules=[linear_qkv,linear_proj]", f"checkpoint.pretrained_checkpoint={ckpt}", f"checkpoint.save={adapters}"]))
    merge(str(adapters), str(tmp_path / "merged"))
    _exported_matches(tmp_path / "merged", tmp_path / "hf-merged")
