"""File-backed tokenizers built from files made in the test: round trips, EOD, vocab size derived
into the model and padded by the provider, and clear errors for missing or unusable files."""

import json
import os

import pytest

from _tokenizer_files import TEXT, bytes_to_unicode, gpt2_files, train_bpe, train_sentencepiece
from plugtron.config import TokenizerConfig, load_config
from plugtron.data import build_tokenizer
from plugtron.errors import ConfigError, DataError

import tokenizers  # noqa: E402,F401  (the test extra installs it; never skip)
import sentencepiece  # noqa: E402,F401

SAMPLES = ["the cat sat on the mat", "Grüße aus Köln: 12345!", "  spaces  and\nnewlines\t", "unseen wörds ☃"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    return {
        "gpt2": gpt2_files(str(root / "gpt2")),
        "hf": train_bpe(str(root / "hf")),
        "sp": train_sentencepiece(str(root / "sp")),
    }


def test_gpt2_bpe_ids_follow_the_merges(files):
    g = files["gpt2"]
    tok = build_tokenizer(TokenizerConfig(tokenizer_type="GPT2BPETokenizer", vocab_file=g["vocab_file"],
                                          merge_file=g["merge_file"]))
    v = g["vocab"]
    assert tok.eod == v["<|endoftext|>"] and tok.vocab_size == len(v)
    # "the" merges fully; " the" becomes one "Ġthe" token; " cat" uses "Ġc" + "at" -> "Ġcat"
    assert tok.tokenize("the the cat") == [v["the"], v["Ġthe"], v["Ġcat"]]
    b2u = bytes_to_unicode()
    assert tok.tokenize("ü") == [v[b2u[b]] for b in "ü".encode()]
    for text in SAMPLES:
        assert tok.detokenize(tok.tokenize(text) + [tok.eod]) == text


def test_huggingface_from_directory_and_file(files):
    by_dir = build_tokenizer(TokenizerConfig(tokenizer_type="HuggingFaceTokenizer", tokenizer_model=files["hf"]))
    by_file = build_tokenizer(TokenizerConfig(tokenizer_type="HuggingFaceTokenizer",
                                              tokenizer_model=os.path.join(files["hf"], "tokenizer.json")))
    assert by_dir.eod == by_file.eod == 0  # "</s>", the first special token trained
    assert by_dir.vocab_size == by_file.vocab_size == 300
    for text in SAMPLES + TEXT[:4]:
        ids = by_dir.tokenize(text)
        assert ids == by_file.tokenize(text) and by_dir.eod not in ids
        assert by_dir.detokenize(ids + [by_dir.eod]) == text
    assert len(by_dir.tokenize(TEXT[0])) < len(TEXT[0].encode()) / 2  # trained merges actually compress


def test_huggingface_directory_with_vocab_and_merges(files):
    tok = build_tokenizer(TokenizerConfig(tokenizer_type="HuggingFaceTokenizer",
                                          tokenizer_model=os.path.dirname(files["gpt2"]["vocab_file"])))
    assert tok.eod == files["gpt2"]["vocab"]["<|endoftext|>"]
    assert tok.detokenize(tok.tokenize("the cat")) == "the cat"


def test_sentencepiece_round_trip(files):
    tok = build_tokenizer(TokenizerConfig(tokenizer_type="SentencePieceTokenizer", tokenizer_model=files["sp"]))
    assert tok.vocab_size == 310 and tok.eod == 2  # SentencePiece default: 0 unk, 1 bos, 2 eos
    for text in SAMPLES + TEXT[:4]:
        ids = tok.tokenize(text)
        assert max(ids) < tok.vocab_size and tok.detokenize(ids + [tok.eod]) == text


def test_identifiers_change_with_file_content(tmp_path, files):
    a = build_tokenizer(TokenizerConfig(tokenizer_type="HuggingFaceTokenizer", tokenizer_model=files["hf"]))
    other = train_bpe(str(tmp_path / "other"), vocab_size=280)
    b = build_tokenizer(TokenizerConfig(tokenizer_type="HuggingFaceTokenizer", tokenizer_model=other))
    assert a.unique_identifiers["sha"] != b.unique_identifiers["sha"]


def test_vocab_size_derived_and_padded(files):
    cfg = load_config(None, ["tokenizer.tokenizer_type=SentencePieceTokenizer",
                             f"tokenizer.tokenizer_model={files['sp']}", "model.make_vocab_size_divisible_by=128"])
    cfg.validate(1)
    assert cfg.model.vocab_size == 310 and cfg.model.padded_vocab_size(310) == 384
    cfg = load_config(None, ["tokenizer.tokenizer_type=HuggingFaceTokenizer", f"tokenizer.tokenizer_model={files['hf']}",
                             "model.make_vocab_size_divisible_by=128", "model.tensor_model_parallel_size=2"])
    cfg.validate(2)
    assert cfg.model.vocab_size == 300 and cfg.model.padded_vocab_size(300) == 512  # 128 x TP 2


@pytest.mark.parametrize("kind,field,name", [
    ("GPT2BPETokenizer", "vocab_file", "vocab.json"),
    ("GPT2BPETokenizer", "merge_file", "merges.txt"),
    ("HuggingFaceTokenizer", "tokenizer_model", "nothing_here"),
    ("SentencePieceTokenizer", "tokenizer_model", "sp.model"),
])
def test_missing_file_is_named(tmp_path, files, kind, field, name):
    kw = dict(vocab_file=files["gpt2"]["vocab_file"], merge_file=files["gpt2"]["merge_file"])
    kw[field] = str(tmp_path / name)
    with pytest.raises(DataError, match=rf"tokenizer\.{field}: .*{name} not found"):
        build_tokenizer(TokenizerConfig(tokenizer_type=kind, **kw))
    cfg = load_config(None, [f"tokenizer.tokenizer_type={kind}"] + [f"tokenizer.{k}={v}" for k, v in kw.items()])
    with pytest.raises(ConfigError, match=rf"model\.vocab_size: unset.*{name} not found"):
        cfg.validate(1)


def test_unusable_files_give_clear_errors(tmp_path, files):
    vocab = json.load(open(files["gpt2"]["vocab_file"], encoding="utf-8"))
    del vocab["<|endoftext|>"]
    (tmp_path / "v.json").write_text(json.dumps(vocab))
    with pytest.raises(DataError, match="no '<|endoftext|>' token"):
        build_tokenizer(TokenizerConfig(tokenizer_type="GPT2BPETokenizer", vocab_file=str(tmp_path / "v.json"),
                                        merge_file=files["gpt2"]["merge_file"]))
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(DataError, match=r"cannot load .*bad\.model as a SentencePiece model"):
        build_tokenizer(TokenizerConfig(tokenizer_type="SentencePieceTokenizer", tokenizer_model=str(tmp_path / "bad.model")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds neither tokenizer.json"):
        build_tokenizer(TokenizerConfig(tokenizer_type="HuggingFaceTokenizer", tokenizer_model=str(tmp_path / "empty")))
    with pytest.raises(DataError, match="required for HuggingFaceTokenizer"):
        build_tokenizer(TokenizerConfig(tokenizer_type="HuggingFaceTokenizer"))


@pytest.mark.parametrize("kind", ["gpt2", "hf", "sp"])
def test_preprocess_with_each_tokenizer_round_trips(tmp_path, files, kind):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from plugtron.data.preprocess.parallel import preprocess

    cfg = {"gpt2": TokenizerConfig(tokenizer_type="GPT2BPETokenizer", vocab_file=files["gpt2"]["vocab_file"],
                                   merge_file=files["gpt2"]["merge_file"]),
           "hf": TokenizerConfig(tokenizer_type="HuggingFaceTokenizer", tokenizer_model=files["hf"]),
           "sp": TokenizerConfig(tokenizer_type="SentencePieceTokenizer", tokenizer_model=files["sp"])}[kind]
    src = tmp_path / "docs.jsonl"
    texts = [f"{t} #{i}" for i, t in enumerate(TEXT[:30])]
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = preprocess(str(src), str(tmp_path / "o"), cfg, workers=2)
    tok = build_tokenizer(cfg)
    ds = IndexedDataset(out["output_prefix"])
    assert len(ds) == 30 and out["dtype"] == "uint16"
    for i, text in enumerate(texts):
        ids = ds[i].tolist()
        assert ids[-1] == tok.eod and ids[:-1] == tok.tokenize(text) and tok.detokenize(ids) == text
