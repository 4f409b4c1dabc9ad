"""``config show`` runs every check ``train`` runs before building (issue 29, points 5, 7 and 8):
the tokenizer's files, the SFT data files and their format, the pretrained checkpoint. Both give the
same verdict, ``train`` before it builds anything, each message naming the field that fixes it."""

import json

import pytest

from plugtron.cli import main
from plugtron.config import load_config
from plugtron.errors import CheckpointError, ConfigError
from plugtron.training import train

QA = {"input": "2+2=", "output": "4"}
CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
RUN = ["train.train_iters=2", "scheduler.lr_warmup_iters=0", "train.eval_interval=null", "checkpoint.save=null", "model.seq_length=64"]


def _data(root, row, splits=("training", "validation", "test")):
    root.mkdir()
    for name in splits:
        (root / f"{name}.jsonl").write_text(json.dumps(row) + "\n")
    return root


def _same_verdict(capsys, overrides, expected, error=ConfigError):
    """``config show`` refuses with ``expected`` in its message, and so does ``train`` (before building)."""
    assert main(["config", "show", *overrides]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    with pytest.raises(error) as exc:
        train(load_config(None, overrides))
    assert expected in str(exc.value)


def test_missing_tokenizer_file(tmp_path, capsys):
    _same_verdict(capsys, RUN + ["tokenizer.tokenizer_type=HuggingFaceTokenizer", "model.vocab_size=512",
                                 f"tokenizer.tokenizer_model={tmp_path / 'nope'}"],
                  f"tokenizer.tokenizer_model: {tmp_path / 'nope'} not found")


def test_validation_and_test_splits_are_optional_training_is_not(tmp_path, capsys):
    """Issue 25: a run without validation.jsonl/test.jsonl trains without them (config show agrees);
    a missing training.jsonl is refused by both, before anything is built."""
    root = _data(tmp_path / "d", QA, splits=("training",))
    assert main(["config", "show", *RUN, f"dataset.dataset_root={root}"]) == 0
    only_valid = _data(tmp_path / "v", QA, splits=("validation",))
    _same_verdict(capsys, RUN + [f"dataset.dataset_root={only_valid}"],
                  f"dataset.dataset_root: {only_valid / 'training.jsonl'} not found (the training split is required; "
                  "also read: training.jsonl, .json, .parquet, .arrow or a training/ directory")


def test_wrong_dataset_root(tmp_path, capsys):
    _same_verdict(capsys, RUN + [f"dataset.dataset_root={tmp_path / 'nowhere'}"],
                  f"dataset.dataset_root: {tmp_path / 'nowhere'} is not a directory")


def test_chat_lines_name_data_format_chat(tmp_path, capsys):
    root = _data(tmp_path / "d", CHAT)
    _same_verdict(capsys, RUN + [f"dataset.dataset_root={root}"],
                  "does not match dataset.data_format 'input_output'; the lines hold 'messages' (chat messages): "
                  "set dataset.data_format: chat")


@pytest.mark.parametrize("kind", ["hf_dir", "hf_name"])
def test_pretrained_checkpoint_that_is_a_hugging_face_model_names_import_hf(tmp_path, capsys, kind):
    root = _data(tmp_path / "d", QA)
    if kind == "hf_dir":
        hf = tmp_path / "hf"
        hf.mkdir()
        (hf / "config.json").write_text("{}")
        path, expected = str(hf), f"it is a Hugging Face model directory: convert it first (plugtron convert import-hf {hf}"
    else:
        path, expected = "hf://meta-llama/Llama-3.2-1B", "is a Hugging Face model name"
    # train's collective checkpoint-path check says it (a CheckpointError on every rank)
    _same_verdict(capsys, RUN + [f"dataset.dataset_root={root}", f"checkpoint.pretrained_checkpoint={path}"], expected,
                  error=CheckpointError)
    with pytest.raises(CheckpointError, match="plugtron convert import-hf"):
        train(load_config(None, RUN + [f"dataset.dataset_root={root}", f"checkpoint.pretrained_checkpoint={path}"]))
