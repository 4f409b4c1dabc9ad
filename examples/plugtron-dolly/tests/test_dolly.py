import json

import pytest

from plugtron_dolly import Dolly, DollyText

RECORDS = [{"instruction": "Add the numbers.", "context": "2 and 3", "response": "5"},
           {"instruction": "Say hi.", "response": "hi"}] * 8


def _tokenizer():
    from plugtron.data import ByteLevelTokenizer

    return ByteLevelTokenizer()


def test_only_the_response_is_learned():
    tok = _tokenizer()
    fmt = Dolly(Dolly.Options())
    ids, answer = fmt.encode(RECORDS[0], None, tok, limit=1000)
    prompt = "### Instruction:\nAdd the numbers.\n\n### Context:\n2 and 3\n\n### Response:\n"
    assert tok.detokenize(ids[:-1].tolist()) == prompt + "5" and ids[-1] == tok.eod
    assert answer.tolist() == [False] * len(prompt.encode()) + [True, True]
    ids, answer = fmt.encode(RECORDS[1], None, tok, limit=12)  # too long: the prompt is cut from the left
    assert len(ids) == 12 and answer.tolist()[-3:] == [True] * 3 and not answer[:-3].any()
    with pytest.raises(ValueError, match="expected a string under 'response'"):
        fmt.encode({"instruction": "x"}, None, tok, limit=100)


def _write(root, lines):
    root.mkdir()
    for split in ("training", "validation", "test"):
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


def test_plugtron_fine_tunes_on_dolly_records(tmp_path, plugtron_run):
    root = _write(tmp_path / "data", RECORDS)
    run = plugtron_run([f"dataset.dataset_root={root}", "dataset.data_format=dolly", "dataset.seq_length=64",
                        "dataset.format_options.truncate=response", "train.train_iters=4"])
    assert len(run.losses) == 4 and run.eval["valid"]


def test_options_are_typed_and_checked(tmp_path):
    from plugtron.config import load_config
    from plugtron.errors import ConfigError, DataError
    from plugtron.testing import tiny_for

    root = _write(tmp_path / "data", RECORDS)
    sft = [f"dataset.dataset_root={root}", "dataset.data_format=dolly", "dataset.seq_length=64"]
    base = tiny_for(sft) + sft
    cfg = load_config(None, base).validate()
    assert cfg.dataset.format_options["truncate"] == "prompt"  # defaults filled in (config show prints them)
    with pytest.raises(ConfigError, match=r"dataset.format_options.truncate: expected one of 'prompt', 'response', got str 'middle'"):
        load_config(None, base + ["dataset.format_options.truncate=middle"]).validate()
    with pytest.raises(ConfigError, match=r"dataset.format_options.templat: unknown key \(did you mean 'template'\?\)"):
        load_config(None, base + ["dataset.format_options.templat=x"]).validate()
    bad = _write(tmp_path / "bad", [{"instruction": "x", "response": 3}])
    from plugtron.data.sft_examples import load_examples

    cfg = load_config(None, base + [f"dataset.dataset_root={bad}"]).validate()
    with pytest.raises(DataError, match=r"training.jsonl:1: expected a JSON object with 'instruction' and 'response' strings"):
        load_examples(str(bad / "training.jsonl"), cfg.dataset, _tokenizer())


def test_plugtron_pretrains_on_dolly_text(tmp_path, plugtron_run):
    from plugtron.config import load_config
    from plugtron.errors import ConfigError
    from plugtron.testing import TINY

    path = tmp_path / "dolly.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS * 4))
    picked = ["dataset.data_format=dolly_text", f"dataset.format_options.path={path}"]
    run = plugtron_run([*picked, "dataset.format_options.valid_every=4", "train.train_iters=3"])
    assert len(run.losses) == 3 and run.eval["valid"]
    cfg = load_config(None, TINY + picked).validate()
    train = DollyText(DollyText.Options(path=str(path))).build(cfg, _tokenizer(), [1, 0, 0])[0]
    first, second = train[0], train[1]
    assert _tokenizer().detokenize(first["tokens"][:15].tolist()) == "Add the numbers"
    assert (first["labels"][:-1] == first["tokens"][1:]).all() and first["labels"][-1] == second["tokens"][0]
    with pytest.raises(ConfigError, match=r"dataset.format_options.path: required"):
        load_config(None, TINY + ["dataset.data_format=dolly_text"]).validate()
    with pytest.raises(ConfigError, match=r"dataset.data_format: 'dolly' is an SFT format .* takes a pretraining format: .*dolly_text"):
        load_config(None, TINY + ["dataset.data_format=dolly"]).validate()
