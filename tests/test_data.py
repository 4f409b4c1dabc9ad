"""plugtron.data: tokenizers, the bundled corpus, Megatron datasets, micro batches."""

import filecmp
import json
import os
import shutil

import pytest
import torch

from plugtron.config import ConfigContainer, TokenizerConfig
from plugtron.data import (
    EvalBatches, MicroBatchIterator, build_datasets, build_tokenizer, bundled_corpus_prefix,
)
from plugtron.data.gpt import parse_blend, sample_counts
from plugtron.data.make_corpus import build_indexed_dataset, bundled_corpus_jsonl, write_jsonl
from plugtron.errors import ConfigError, DataError

SEQ, MBS, GBS = 32, 2, 8
BYTES = build_tokenizer(TokenizerConfig())


def make_cfg(cache, train_iters=10, eval_interval=5, eval_iters=2, **dataset):
    cfg = ConfigContainer()
    t = cfg.train
    t.train_iters, t.eval_interval, t.eval_iters = train_iters, eval_interval, eval_iters
    t.micro_batch_size, t.global_batch_size = MBS, GBS
    cfg.model.seq_length = cfg.dataset.sequence_length = SEQ
    cfg.dataset.path_to_cache = None if cache is None else str(cache)
    for k, v in dataset.items():
        setattr(cfg.dataset, k, v)
    return cfg


def tiny_corpus(tmp_path, name="tiny", n_docs=20, words=40):
    jsonl = tmp_path / f"{name}.jsonl"
    write_jsonl([f"{name} document {i}: " + " ".join(f"{name}{i}x{j}" for j in range(words)) for i in range(n_docs)], str(jsonl))
    prefix = str(tmp_path / f"{name}_text_document")
    build_indexed_dataset(str(jsonl), prefix)
    return prefix


def first_tokens(dataset, n_global=2, dp_rank=0, dp_size=1, consumed=0):
    it = MicroBatchIterator(dataset, MBS, GBS, dp_rank, dp_size, consumed)
    return [torch.cat([b["tokens"] for b in it.global_batch()]) for _ in range(n_global)]


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    cfg = make_cfg(tmp_path_factory.mktemp("cache"))
    return cfg, build_datasets(cfg, BYTES)


# ------------------------------------------------------------------------------------ tokenizers

def test_byte_level_round_trip():
    text = "Grüße, 世界! tab\tnewline\n"
    ids = BYTES.tokenize(text)
    assert BYTES.vocab_size == 257 and BYTES.eod == 256 and max(ids) < 256
    assert BYTES.detokenize(ids + [BYTES.eod]) == text
    assert BYTES.unique_identifiers["class"] == "ByteLevelTokenizer"


def test_null_tokenizer():
    tok = build_tokenizer(TokenizerConfig(tokenizer_type="NullTokenizer", vocab_size=100))
    assert (tok.vocab_size, tok.eod) == (101, 100)
    assert tok.tokenize("3 1  4\n99") == [3, 1, 4, 99]
    assert tok.detokenize([3, 1, 4]) == "3 1 4"
    with pytest.raises(DataError, match="outside"):
        tok.tokenize("100")
    with pytest.raises(DataError, match="vocab_size"):
        build_tokenizer(TokenizerConfig(tokenizer_type="NullTokenizer"))


# -------------------------------------------------------------------------------- bundled corpus

def test_bundled_corpus_rebuilds_byte_identical(tmp_path):
    prefix = str(tmp_path / "rebuilt")
    docs, tokens = build_indexed_dataset(bundled_corpus_jsonl(), prefix)
    with open(bundled_corpus_jsonl(), encoding="utf-8") as f:
        assert docs == sum(1 for _ in f) > 1000
    for suffix in (".bin", ".idx"):
        assert filecmp.cmp(prefix + suffix, bundled_corpus_prefix() + suffix, shallow=False)
    assert os.path.getsize(prefix + ".bin") == 2 * tokens  # uint16 ids
    total = sum(os.path.getsize(bundled_corpus_jsonl()) if s == "" else os.path.getsize(bundled_corpus_prefix() + s)
                for s in ("", ".bin", ".idx"))
    assert total < 4 * 2**20


# ------------------------------------------------------------------------------------- datasets

def test_sample_counts():
    cfg = ConfigContainer()
    cfg.train.train_iters, cfg.train.global_batch_size, cfg.train.eval_interval, cfg.train.eval_iters = 100, 4, 30, 5
    assert sample_counts(cfg.train) == [400, (100 // 30 + 1) * 5 * 4, 20]
    cfg.train.eval_interval = None
    assert sample_counts(cfg.train) == [400, 0, 20]


def test_bundled_datasets_shapes(bundled):
    cfg, (train, valid, test) = bundled
    counts = sample_counts(cfg.train)
    for ds, n in zip((train, valid, test), counts):
        assert len(ds) >= n
    sample = train[0]
    assert sample["tokens"].shape == (SEQ,) and sample["tokens"].dtype == torch.int64
    assert "attention_mask" not in sample  # create_attention_mask follows reset_attention_mask
    batch = next(MicroBatchIterator(train, MBS, GBS))
    assert batch["tokens"].shape == batch["labels"].shape == batch["position_ids"].shape == (MBS, SEQ)
    assert batch["loss_mask"].dtype == torch.float32 and batch["attention_mask"] is None
    assert torch.equal(batch["tokens"][:, 1:], batch["labels"][:, :-1])
    assert int(batch["tokens"].max()) <= 256


def test_same_seed_same_batches(bundled, tmp_path):
    cfg, (train, _, _) = bundled
    again = build_datasets(make_cfg(tmp_path / "fresh"), BYTES)[0]  # rebuilt, not read from cache
    assert all(torch.equal(a, b) for a, b in zip(first_tokens(train), first_tokens(again)))
    other = build_datasets(make_cfg(tmp_path / "fresh", random_seed=7), BYTES)[0]
    assert not torch.equal(first_tokens(train, 1)[0], first_tokens(other, 1)[0])


def test_resume_continues_with_the_right_batch(bundled):
    train = bundled[1][0]
    it = MicroBatchIterator(train, MBS, GBS)
    run = [torch.cat([b["tokens"] for b in it.global_batch()]) for _ in range(3)]
    assert it.consumed_samples == 3 * GBS
    resumed = first_tokens(train, 1, consumed=2 * GBS)[0]
    assert torch.equal(resumed, run[2])
    # consumed_samples counts a global batch once its last micro batch is out
    it = MicroBatchIterator(train, MBS, GBS, consumed_samples=5 * GBS)
    for _ in range(GBS // MBS - 1):
        next(it)
    assert it.consumed_samples == 5 * GBS
    next(it)
    assert it.consumed_samples == 6 * GBS


def test_dp_shares_concatenate_to_global_batch(bundled):
    train = bundled[1][0]
    whole = first_tokens(train, 2)
    shares = [first_tokens(train, 2, dp_rank=r, dp_size=2) for r in range(2)]
    for k in range(2):
        assert torch.equal(torch.cat([shares[0][k], shares[1][k]]), whole[k])
    with pytest.raises(ConfigError, match="not a multiple"):
        MicroBatchIterator(train, 3, GBS)


def test_eval_window_is_fixed(bundled):
    valid = bundled[1][1]
    ev = EvalBatches(valid, MBS, GBS, eval_iters=2)
    first, second = list(ev), list(ev)
    assert len(first) == len(ev) == 2 * GBS // MBS
    assert all(torch.equal(a["tokens"], b["tokens"]) for a, b in zip(first, second))
    assert torch.equal(torch.cat([b["tokens"] for b in first]), torch.cat(first_tokens(valid, 2)))


def test_mock_dataset(tmp_path):
    train, valid, test = build_datasets(make_cfg(tmp_path, mock=True, eval_iters=0), BYTES)
    assert valid is None and test is None and type(train).__name__ == "MockGPTDataset"
    assert next(MicroBatchIterator(train, MBS, GBS))["tokens"].shape == (MBS, SEQ)


def test_weighted_blend_and_reset_attention_mask(tmp_path):
    a, b = tiny_corpus(tmp_path, "alpha"), tiny_corpus(tmp_path, "beta")
    cfg = make_cfg(tmp_path / "cache", blend=["0.3", a, "0.7", b], split="80,10,10",
                   reset_attention_mask=True, reset_position_ids=True, eod_mask_loss=True)
    train, valid, test = build_datasets(cfg, BYTES)
    assert type(train).__name__ == "BlendedDataset" and len(train) >= 10 * GBS
    text = "".join(BYTES.detokenize(train[i]["tokens"].tolist()) for i in range(40))
    assert "alpha" in text and "beta" in text
    batch = next(MicroBatchIterator(train, MBS, GBS))
    assert batch["attention_mask"].shape == (MBS, 1, SEQ, SEQ) and batch["attention_mask"].dtype == torch.bool
    assert bool(batch["attention_mask"][0, 0, 0, 1])  # True = masked (future token)
    eod = batch["tokens"] == BYTES.eod
    assert (batch["loss_mask"][eod] == 0).all()


def test_blend_per_split(tmp_path):
    a, b = tiny_corpus(tmp_path, "alpha"), tiny_corpus(tmp_path, "beta")
    cfg = make_cfg(tmp_path / "cache", split=None, blend_per_split=[[a, b], [b], None])
    train, valid, test = build_datasets(cfg, BYTES)
    assert test is None and len(valid) >= sample_counts(cfg.train)[1]
    assert "beta" in BYTES.detokenize(valid[0]["tokens"].tolist())


def test_default_cache_is_per_data_content(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGTRON_CACHE_DIR", str(tmp_path / "pc"))
    prefix = tiny_corpus(tmp_path, n_docs=20)
    cfg = make_cfg(None, blend=[prefix], split="90,10,0")
    build_datasets(cfg, BYTES)
    before = set(os.listdir(tmp_path / "pc" / "index"))
    tiny_corpus(tmp_path, n_docs=30)  # rebuilt in place: old sample indices must not be reused
    train = build_datasets(cfg, BYTES)[0]
    assert len(set(os.listdir(tmp_path / "pc" / "index")) - before) == 1
    assert "tiny25x" in "".join(BYTES.detokenize(train[i]["tokens"].tolist()) for i in range(len(train)))


def test_parse_blend():
    assert parse_blend(["0.3", "/a", "0.7", "/b"], "k") == (["/a", "/b"], [0.3, 0.7])
    assert parse_blend(["/a", "/b"], "k") == (["/a", "/b"], None)
    with pytest.raises(DataError, match="mixes numbers and paths"):
        parse_blend(["0.3", "/a", "/b"], "k")


# --------------------------------------------------------------------------------------- errors

def test_missing_file_is_named(tmp_path):
    prefix = tiny_corpus(tmp_path)
    os.remove(prefix + ".idx")
    with pytest.raises(DataError, match=r"tiny_text_document\.idx not found"):
        build_datasets(make_cfg(tmp_path / "c", blend=[prefix]), BYTES)


def test_empty_dataset(tmp_path):
    jsonl = tmp_path / "empty.jsonl"
    jsonl.write_text("")
    build_indexed_dataset(str(jsonl), str(tmp_path / "empty"))
    with pytest.raises(DataError, match="empty"):
        build_datasets(make_cfg(tmp_path / "c", blend=[str(tmp_path / "empty")]), BYTES)


def test_split_with_zero_documents_fails_instead_of_looping(tmp_path):
    prefix = tiny_corpus(tmp_path, n_docs=20)
    with pytest.raises(DataError, match="valid split 0 of the 20 documents"):
        build_datasets(make_cfg(tmp_path / "c", blend=[prefix], split="98,1,1"), BYTES)
    # eval on but no valid share: say so; a test split without share is simply absent
    with pytest.raises(DataError, match="eval_iters: 0"):
        build_datasets(make_cfg(tmp_path / "c", blend=[prefix], split="100,0,0"), BYTES)
    train, valid, test = build_datasets(make_cfg(tmp_path / "c", blend=[prefix], split="90,10,0"), BYTES)
    assert test is None and len(valid) > 0


def test_bundled_corpus_needs_byte_tokenizer(tmp_path):
    null = build_tokenizer(TokenizerConfig(tokenizer_type="NullTokenizer", vocab_size=300))
    with pytest.raises(DataError, match="ByteLevelTokenizer"):
        build_datasets(make_cfg(tmp_path), null)


def test_corrupt_jsonl_names_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "ok"}) + "\n{\"body\": 1}\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        build_indexed_dataset(str(bad), str(tmp_path / "bad"))


# ------------------------------------------------------------------------------ two processes

def _two_rank_worker(rank, world_size, cache, out_dir, blend):
    for name, cfg in [("bundled", make_cfg(cache)), ("blend", make_cfg(cache, blend=blend, split="80,10,10"))]:
        train = build_datasets(cfg, BYTES)[0]
        share = first_tokens(train, 1, dp_rank=rank, dp_size=world_size)[0]
        torch.save(share, f"{out_dir}/{name}{rank}.pt")
    with pytest.raises(DataError, match="valid split 0"):  # raised on every rank: no hang
        build_datasets(make_cfg(cache, blend=[blend[1]], split="98,1,1"), BYTES)


@pytest.mark.slow
def test_two_ranks_share_one_cache(tmp_path):
    import _mcore_helpers as h

    blend = ["0.3", tiny_corpus(tmp_path, "alpha"), "0.7", tiny_corpus(tmp_path, "beta")]
    h.spawn(_two_rank_worker, 2, str(tmp_path / "cache"), str(tmp_path), blend)
    for name, cfg in [("bundled", make_cfg(tmp_path / "c1")), ("blend", make_cfg(tmp_path / "c2", blend=blend, split="80,10,10"))]:
        single = first_tokens(build_datasets(cfg, BYTES)[0], 1)[0]
        both = torch.cat([torch.load(tmp_path / f"{name}{r}.pt") for r in range(2)])
        assert torch.equal(both, single), name


_IDX_CHECK = """
import sys
sys.path.insert(0, {tests!r})
from test_data import BYTES, make_cfg
from plugtron.data import build_datasets
from plugtron.errors import DataError
for prefix in sys.argv[1:]:
    try:
        build_datasets(make_cfg(prefix + "_cache", blend=[prefix], split="90,10,0"), BYTES)
        print("ACCEPTED", prefix)
    except DataError as err:
        print("DataError", err)
"""


def test_truncated_or_absurd_idx_is_named_without_a_traceback(tmp_path):
    """Each broken .idx is a DataError naming it; Megatron's IndexedDataset never sees one, so no
    'Exception ignored in IndexedDataset.__del__' traceback reaches stderr (a subprocess: the
    unraisable-exception hook prints there, outside pytest's capture)."""
    import struct
    import subprocess
    import sys

    prefix = tiny_corpus(tmp_path)
    good = open(prefix + ".idx", "rb").read()
    count = struct.unpack("<Q", good[18:26])[0]
    broken = {
        "half": good[: len(good) // 2], "header_only": good[:40], "minus_8": good[:-8],
        "absurd_sequences": good[:18] + struct.pack("<Q", 2**62) + good[26:],
        "absurd_documents": good[:26] + struct.pack("<Q", 2**62) + good[34:],
        "few_documents": good[:26] + struct.pack("<Q", 3) + good[34:],
        "negative_length": good[:34] + struct.pack("<i", -5) + good[38:],
        "bad_last_document": good[:-8] + struct.pack("<q", count + 7),
    }
    prefixes = []
    for name, data in broken.items():
        p = str(tmp_path / name)
        shutil.copy(prefix + ".bin", p + ".bin")
        with open(p + ".idx", "wb") as f:
            f.write(data)
        prefixes.append(p)
    code = _IDX_CHECK.format(tests=os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code, *prefixes], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("DataError", "ACCEPTED"))]
    assert proc.returncode == 0 and len(lines) == len(broken), proc.stdout + proc.stderr
    for name, line in zip(broken, lines):
        assert line.startswith("DataError") and f"{name}.idx" in line, line
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
