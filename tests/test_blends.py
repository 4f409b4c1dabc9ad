"""Pretraining blends on preprocessed data: configured proportions, same seed => same stream,
resume at sample N continues with batch N+1; sequence length must match the model."""

import json

import pytest
import torch

from plugtron.config import ConfigContainer, TokenizerConfig, load_config
from plugtron.data import MicroBatchIterator, build_datasets, build_tokenizer
from plugtron.data.preprocess.parallel import preprocess
from plugtron.errors import ConfigError

BYTES = build_tokenizer(TokenizerConfig())
SEQ, MBS, GBS = 32, 2, 8


def corpus(tmp_path, name, n=60):
    src = tmp_path / f"{name}.jsonl"
    src.write_text("".join(json.dumps({"text": f"{name} {i} " + f"{name}-{i} " * (3 + i % 9)}) + "\n" for i in range(n)))
    return preprocess(str(src), str(tmp_path / name), TokenizerConfig(), workers=1)["output_prefix"]


@pytest.fixture(scope="module")
def blend(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("blend")
    return ["0.3", corpus(tmp, "alpha"), "0.7", corpus(tmp, "beta")], tmp


def make_cfg(blend, cache, train_iters, seed=1234):
    cfg = ConfigContainer()
    t = cfg.train
    t.train_iters, t.eval_interval, t.eval_iters = train_iters, None, 0
    t.micro_batch_size, t.global_batch_size = MBS, GBS
    cfg.model.seq_length = cfg.dataset.sequence_length = SEQ
    cfg.dataset.blend, cfg.dataset.split, cfg.dataset.random_seed = blend, "100,0,0", seed
    cfg.dataset.path_to_cache = str(cache)
    return cfg


def global_batches(dataset, n, consumed=0):
    it = MicroBatchIterator(dataset, MBS, GBS, consumed_samples=consumed)
    return [torch.cat([m["tokens"] for m in it.global_batch()]) for _ in range(n)]


def test_blend_proportions_over_10000_samples(blend):
    prefixes, tmp = blend
    train = build_datasets(make_cfg(prefixes, tmp / "c10k", train_iters=10_000 // GBS), BYTES)[0]
    assert type(train).__name__ == "BlendedDataset" and len(train) >= 10_000
    ids = [int(train[i]["dataset_id"]) for i in range(10_000)]
    share = ids.count(0) / len(ids)
    assert abs(share - 0.3) <= 0.02, share
    # and the samples really come from the named corpus
    for i in (0, 1, 2, 3):
        text = BYTES.detokenize(train[i]["tokens"].tolist())
        assert ("alpha" if ids[i] == 0 else "beta") in text


def test_same_seed_same_first_100_batches(blend):
    prefixes, tmp = blend
    a = build_datasets(make_cfg(prefixes, tmp / "s1", 100), BYTES)[0]
    b = build_datasets(make_cfg(prefixes, tmp / "s2", 100), BYTES)[0]  # rebuilt in a fresh cache
    first, again = global_batches(a, 100), global_batches(b, 100)
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    other = global_batches(build_datasets(make_cfg(prefixes, tmp / "s3", 100, seed=7), BYTES)[0], 3)
    assert not all(torch.equal(x, y) for x, y in zip(first[:3], other))


@pytest.mark.parametrize("n", [1, 37, 99])
def test_resume_at_sample_n_continues_with_the_next_batch(blend, n):
    prefixes, tmp = blend
    cfg = make_cfg(prefixes, tmp / "r", 100)
    run = global_batches(build_datasets(cfg, BYTES)[0], 100)
    resumed = build_datasets(make_cfg(prefixes, tmp / "r", 100), BYTES)[0]  # a new process would rebuild it
    rest = global_batches(resumed, 100 - n, consumed=n * GBS)
    assert all(torch.equal(x, y) for x, y in zip(rest, run[n:]))


def test_sequence_length_must_equal_the_models():
    cfg = load_config(None, ["dataset.sequence_length=256"])
    with pytest.raises(ConfigError, match=r"dataset\.sequence_length: 256 differs from model\.seq_length 128"):
        cfg.validate(1)
