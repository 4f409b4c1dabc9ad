"""Done-when of chat fine-tuning: a tiny imported HF Llama whose tokenizer carries a Llama-3-style or
a ChatML template is fine-tuned on a ShareGPT or an OpenAI-messages file; the samples the run
trains on hold the tokens ``apply_chat_template`` gives, and the learned positions are exactly the
assistant turns (transformers' own mask from the ``{% generation %}`` twin of the template)."""

import json

import pytest
import transformers  # noqa: F401  (the test extra installs it; these tests must run, never skip)
import yaml
from _chat_tokenizers import CONVERSATION, TEMPLATES, chat_tokenizer_dir
from _hf_models import build, save

ROLE_TO_SHAREGPT = {"user": "human", "assistant": "gpt"}


def conversations(n):
    """``n`` distinct conversations (system prompt, two user/assistant rounds)."""
    out = []
    for i in range(n):
        convo = [dict(m) for m in CONVERSATION]
        convo[3]["content"] = f"And the dog {i}?"
        convo[4]["content"] = f"the dog sat on the log {i} times"
        out.append(convo)
    return out


def write_split(path, convos, fmt):
    with open(path, "w") as f:
        for c in convos:
            if fmt == "sharegpt":
                rec = {"system": c[0]["content"],
                       "conversations": [{"from": ROLE_TO_SHAREGPT[m["role"]], "value": m["content"]} for m in c[1:]]}
            else:
                rec = {"messages": c}
            f.write(json.dumps(rec) + "\n")


@pytest.mark.parametrize("style, fmt", [("llama3", "sharegpt"), ("chatml", "chat")])
def test_imported_llama_learns_exactly_the_assistant_turns(tmp_path, style, fmt):
    from transformers import PreTrainedTokenizerFast

    from plugtron.config import load_config
    from plugtron.data import build_datasets, build_tokenizer
    from plugtron.providers.hf import AutoBridge
    from plugtron.training import train

    tok_dir = chat_tokenizer_dir(str(tmp_path / "tok"), style)
    hf_tok = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    hf = save(build("llama", vocab=len(hf_tok), positions=128), tmp_path / "hf")
    AutoBridge.import_ckpt(str(hf), str(tmp_path / "ckpt"))
    run_config = yaml.safe_load((tmp_path / "ckpt" / "iter_0000000" / "run_config.yaml").read_text())
    convos = conversations(8)
    root = tmp_path / "data"
    root.mkdir()
    write_split(root / "training.jsonl", convos, fmt)  # no validation or test file: trains without them
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump({
        "model": run_config["model"],
        "dataset": {"dataset_root": str(root), "data_format": fmt},
        "tokenizer": {"tokenizer_type": "HuggingFaceTokenizer", "tokenizer_model": tok_dir}}))
    cfg = load_config(str(tmp_path / "sft.yaml"), [
        "model.seq_length=128", "train.train_iters=3", "train.global_batch_size=2", "train.micro_batch_size=1",
        "train.eval_interval=null", "scheduler.lr_warmup_iters=0", "optimizer.lr=3e-3",
        f"checkpoint.pretrained_checkpoint={tmp_path / 'ckpt'}"]).validate(1)

    # What the run trains on: every row of the training split against transformers' rendering.
    train_ds, valid_ds, test_ds = build_datasets(cfg, build_tokenizer(cfg.tokenizer))
    assert valid_ds is None and test_ds is None
    marked = TEMPLATES[style](marked=True)
    expected = {}
    for c in convos:
        ref = hf_tok.apply_chat_template(c, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                                         chat_template=marked)
        assert ref["input_ids"] == hf_tok.apply_chat_template(c, tokenize=True)  # the tokenizer's own template
        expected[tuple(ref["input_ids"])] = ref["assistant_masks"]
    seen = set()
    for r in range(train_ds.n):
        s = train_ds[r]
        n = int((s["position_ids"][1:] != 0).int().argmin()) + 1 if s["position_ids"][1:].eq(0).any() else 128
        ids = tuple(s["tokens"][:n].tolist() + [int(s["labels"][n - 1])])
        assert ids in expected, "a training row is not apply_chat_template's rendering"
        assert s["loss_mask"][:n].bool().tolist() == [bool(x) for x in expected[ids][1:]]
        assert not s["loss_mask"][n:].any()  # padding never learned
        seen.add(ids)
    assert len(seen) == len(convos)

    losses = train(cfg)["losses"]
    assert len(losses) == 3 and all(x == x for x in losses), losses
