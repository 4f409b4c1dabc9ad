"""``plugtron data preprocess``: JSONL -> Megatron indexed dataset, in parallel and resumable; corrupt
lines counted with their line numbers; then training on the output learns."""

import filecmp
import json
import os

import pytest

from plugtron.cli import main
from plugtron.config import TokenizerConfig
from plugtron.data import build_tokenizer
from plugtron.data.preprocess.parallel import output_name, plan_parts, preprocess
from plugtron.errors import DataError

BYTES_CFG = TokenizerConfig()
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def write_corpus(path, n=400, bad=(), key="text"):
    """``n`` documents; ``bad`` maps a 1-based line number to the raw line written there instead.
    Returns the texts of the good documents in order."""
    texts, lines = [], []
    for i in range(n):
        lineno = len(lines) + 1
        if lineno in bad:
            lines.append(bad[lineno])
        text = f"doc {i}: " + " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(5 + i % 40))
        texts.append(text)
        lines.append(json.dumps({key: text, "id": i}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return texts


def read_back(prefix):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    ds = IndexedDataset(prefix)
    return [ds[i].tolist() for i in range(len(ds))]


def test_parts_cut_at_line_starts(tmp_path):
    src = tmp_path / "c.jsonl"
    write_corpus(src, n=50)
    raw = src.read_bytes()
    ranges = plan_parts(str(src), 4)
    assert len(ranges) == 4 and ranges[0][:1] == (0,) and ranges[-1][1] == len(raw)
    for (s, e, line), (s2, _, _) in zip(ranges, ranges[1:] + [(len(raw), 0, 0)]):
        assert e == s2 and (s == 0 or raw[s - 1:s] == b"\n")
        assert line == raw[:s].count(b"\n") + 1


def test_two_workers_equal_one_and_count_corrupt_lines(tmp_path):
    src = tmp_path / "c.jsonl"
    bad = {10: "{not json", 150: json.dumps({"body": "no text key"}), 300: json.dumps({"text": 5}),
           350: json.dumps({"text": "   "})}
    texts = write_corpus(src, bad=bad)
    one = preprocess(str(src), str(tmp_path / "one"), BYTES_CFG, workers=1)
    two = preprocess(str(src), str(tmp_path / "two"), BYTES_CFG, workers=2)
    for suffix in (".bin", ".idx"):
        assert filecmp.cmp(one["output_prefix"] + suffix, two["output_prefix"] + suffix, shallow=False)
    assert two["output_prefix"] == str(tmp_path / "two_text_document") and two["parts"] == 2
    tok = build_tokenizer(BYTES_CFG)
    docs = read_back(two["output_prefix"])
    assert docs == [tok.tokenize(t) + [tok.eod] for t in texts]
    assert (two["documents"], two["corrupt"], two["empty"]) == (400, 3, 1)
    assert two["tokens"] == sum(len(d) for d in docs)
    where = [e.split(": ")[0] for e in two["corrupt_examples"]]
    assert where == [f"{src}:10", f"{src}:150", f"{src}:300"]
    assert "no 'text' key" in two["corrupt_examples"][1] and "is a int" in two["corrupt_examples"][2]
    assert not [f for f in os.listdir(tmp_path) if ".part" in f]  # parts merged and removed


def test_resume_reuses_finished_parts(tmp_path):
    src = tmp_path / "c.jsonl"
    write_corpus(src, bad={390: "{broken"})  # in the second half: part 2 of 2 fails when strict
    with pytest.raises(DataError, match=r"c\.jsonl:390: expected a JSON object with a 'text' string"):
        preprocess(str(src), str(tmp_path / "out"), BYTES_CFG, workers=2, strict=True)
    left = sorted(f for f in os.listdir(tmp_path) if ".part" in f)
    assert left == [f"out_text_document.part001of002.{s}" for s in ("bin", "idx", "json")]
    again = preprocess(str(src), str(tmp_path / "out"), BYTES_CFG, workers=2)  # crash recovery
    assert again["resumed_parts"] == 1 and again["corrupt"] == 1
    fresh = preprocess(str(src), str(tmp_path / "fresh"), BYTES_CFG, workers=2)
    for suffix in (".bin", ".idx"):
        assert filecmp.cmp(again["output_prefix"] + suffix, fresh["output_prefix"] + suffix, shallow=False)
    assert preprocess(str(src), str(tmp_path / "out"), BYTES_CFG, workers=2).get("up_to_date")
    src.write_text(src.read_text() + json.dumps({"text": "one more"}) + "\n")
    with pytest.raises(DataError, match="exists from another input or tokenizer; pass --overwrite"):
        preprocess(str(src), str(tmp_path / "out"), BYTES_CFG)
    assert preprocess(str(src), str(tmp_path / "out"), BYTES_CFG, overwrite=True)["documents"] == 401


def test_custom_key_and_no_eod(tmp_path):
    src = tmp_path / "c.jsonl"
    texts = write_corpus(src, n=20, key="content")
    s = preprocess(str(src), str(tmp_path / "o"), BYTES_CFG, json_key="content", append_eod=False)
    assert s["output_prefix"].endswith("o_content_document")
    assert read_back(s["output_prefix"]) == [list(t.encode()) for t in texts]


def test_bad_inputs_are_clear(tmp_path, capsys):
    with pytest.raises(DataError, match=r"--input: .*missing\.jsonl not found"):
        preprocess(str(tmp_path / "missing.jsonl"), str(tmp_path / "o"), BYTES_CFG)
    src = tmp_path / "junk.jsonl"
    src.write_text("{oops\n" + json.dumps({"title": "x"}) + "\n\n")
    with pytest.raises(DataError, match=r"junk\.jsonl: no documents with a non-empty 'text' string \(2 corrupt"):
        preprocess(str(src), str(tmp_path / "o"), BYTES_CFG, workers=2)
    assert not os.path.exists(output_name(str(tmp_path / "o"), "text") + ".bin")
    cfg = TokenizerConfig(tokenizer_type="SentencePieceTokenizer", tokenizer_model=str(tmp_path / "sp.model"))
    with pytest.raises(DataError, match=r"sp\.model not found"):
        preprocess(str(src), str(tmp_path / "o"), cfg)
    # through the CLI: one line, no traceback, exit code 2
    assert main(["data", "preprocess", "--input", str(src), "--output-prefix", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("plugtron: error: ") and "junk.jsonl" in err


def test_cli_with_bpe_then_training_learns(tmp_path, capsys):
    import tokenizers  # noqa: F401  (the test extra installs it; never skip)
    from _tokenizer_files import train_bpe

    from plugtron.config import load_config
    from plugtron.data.make_corpus import bundled_corpus_jsonl
    from plugtron.training import train

    src = tmp_path / "corpus.jsonl"
    with open(bundled_corpus_jsonl(), encoding="utf-8") as f:
        lines = [next(f) for _ in range(300)]
    src.write_text("".join(lines) + "{corrupt\n", encoding="utf-8")
    tok_dir = train_bpe(str(tmp_path / "bpe"), vocab_size=500, texts=[json.loads(x)["text"] for x in lines])
    rc = main(["data", "preprocess", "--input", str(src), "--output-prefix", str(tmp_path / "bpe_corpus"),
               "--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", tok_dir, "--workers", "2", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "300 documents" in out and "skipped 1 corrupt line(s)" in out and "corpus.jsonl:301" in out
    prefix = str(tmp_path / "bpe_corpus_text_document")
    small = ["model.num_layers=2", "model.hidden_size=64", "model.seq_length=64", "dataset.sequence_length=64",
             "train.micro_batch_size=4", "train.global_batch_size=8", "scheduler.lr_warmup_iters=2",
             "logger.log_interval=10", "train.eval_interval=null", "train.train_iters=25", "optimizer.lr=5e-3",
             "tokenizer.tokenizer_type=HuggingFaceTokenizer", f"tokenizer.tokenizer_model={tok_dir}",
             f"dataset.blend=[{prefix}]", "dataset.split=98,2,0", f"dataset.path_to_cache={tmp_path / 'cache'}"]
    cfg = load_config(None, small)
    losses = train(cfg)["losses"]
    assert cfg.model.vocab_size == 500
    assert losses[0] > 5.5  # ~ln(500) at init
    assert sum(losses[-5:]) / 5 < losses[0] - 0.8, losses


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom plugtron.cli import main\ntry:\n    main(['data', 'preprocess', '--help'])\n"
            "except SystemExit:\n    pass\nprint('torch imported:', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "--json-key" in out and out.strip().endswith("torch imported: False"), out


def test_unwritable_output_is_one_message_before_any_tokenizing(tmp_path, capsys, monkeypatch):
    import plugtron.data.preprocess.parallel as parallel

    src = tmp_path / "c.jsonl"
    write_corpus(src, n=5)
    monkeypatch.setattr(parallel, "build_tokenizer", None, raising=False)  # not reached: no tokenizing starts
    for prefix in ("/proc/x", str(src / "sub" / "o")):  # a filesystem that takes no files; a file as directory
        assert main(["data", "preprocess", "--input", str(src), "--output-prefix", prefix]) == 2
        err = capsys.readouterr().err
        assert err.count("plugtron: error: --output-prefix: cannot write ") == 1 and prefix in err, err
        assert "Traceback" not in err


def test_deeply_nested_json_line_is_a_counted_corrupt_line_or_a_strict_error(tmp_path):
    src = tmp_path / "deep.jsonl"
    write_corpus(src, n=20, bad={4: "[" * 100000 + "]" * 100000})
    s = preprocess(str(src), str(tmp_path / "o"), BYTES_CFG)
    assert (s["documents"], s["corrupt"]) == (20, 1)
    assert s["corrupt_examples"] == [f"{src}:4: JSON nested too deeply to parse"]
    with pytest.raises(DataError, match=r"deep\.jsonl:4: expected a JSON object with a 'text' string \(JSON nested too deeply"):
        preprocess(str(src), str(tmp_path / "strict"), BYTES_CFG, strict=True)
