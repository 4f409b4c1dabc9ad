"""SFT data: loss only on answer tokens, truncation, chat format, offline packing (reused, exact
boundaries), packed == unpacked per-example loss on a fixed model, clear errors, and a training run
that evaluates the test split at the end."""

import json
import os

import pytest
import torch

from plugtron.config import ConfigContainer, FinetuningDatasetConfig, PackedSequenceSpecs, TokenizerConfig
from plugtron.data import MicroBatchIterator, build_datasets, build_tokenizer
from plugtron.data.packing import pack_rows
from plugtron.data.sft import packed_seq_params
from plugtron.errors import ConfigError, DataError

BYTES = build_tokenizer(TokenizerConfig())
SEQ = 64


def qa(i):
    return {"input": f"Q{i}: {i}+{i}=", "output": f"{2 * i}" + "!" * (i % 7)}


def write_root(root, n=(40, 12, 8), rows=qa, extra=()):
    os.makedirs(root, exist_ok=True)
    for name, count in zip(("training", "validation", "test"), n):
        with open(os.path.join(root, f"{name}.jsonl"), "w") as f:
            for i in range(count):
                f.write(json.dumps(rows(i)) + "\n")
            for line in extra:
                f.write(line + "\n")
    return str(root)


def make_cfg(root, train_iters=5, mbs=2, gbs=4, eval_interval=5, eval_iters=2, packed=False, **kw):
    ds = FinetuningDatasetConfig(dataset_root=root, seq_length=SEQ, **kw)
    if packed:
        ds.packed_sequence_specs = PackedSequenceSpecs(packed_sequence_size=SEQ)
    cfg = ConfigContainer(dataset=ds)
    t = cfg.train
    t.train_iters, t.micro_batch_size, t.global_batch_size = train_iters, mbs, gbs
    t.eval_interval, t.eval_iters = eval_interval, eval_iters
    cfg.model.seq_length = SEQ
    return cfg


def learned(sample):
    """The label ids the loss mask selects, in order."""
    labels, mask = sample["labels"].tolist(), sample["loss_mask"].tolist()
    return [lab for lab, m in zip(labels, mask) if m]


def test_loss_mask_covers_exactly_the_answer(tmp_path):
    root = write_root(tmp_path / "d")
    train, valid, test = build_datasets(make_cfg(root), BYTES)
    assert len(train) >= 20 and valid is not None and test is not None
    answers = {tuple(BYTES.tokenize(qa(i)["output"]) + [BYTES.eod]) for i in range(40)}
    seen = set()
    for k in range(40):
        s = train[k]
        got = tuple(learned(s))
        assert got in answers  # exactly the answer and its EOD: no prompt token, no padding
        seen.add(got)
        where = s["loss_mask"].nonzero().flatten().tolist()
        assert where == list(range(where[0], where[0] + len(got)))  # one contiguous run
        prompt = BYTES.tokenize(qa(int(BYTES.detokenize(s["tokens"][1:5].tolist()).split(":")[0]))["input"])
        assert where[0] == len(prompt) - 1  # the first learned label is the first answer token
        assert torch.equal(s["tokens"][1:], s["labels"][:-1])
    assert len(seen) == len(answers)  # one epoch covers every example once


def test_chat_format_learns_only_assistant_turns(tmp_path):
    def chat(i):
        return {"conv": [{"role": "user", "content": f"hi {i}"},
                         {"role": "assistant", "content": f"hello {i}"}, {"role": "user", "content": "again"},
                         {"role": "assistant", "content": "bye"}]}

    root = write_root(tmp_path / "c", rows=chat)
    cfg = make_cfg(root, data_format="chat", messages_key="conv", do_validation=False, do_test=False)
    train, valid, test = build_datasets(cfg, BYTES)
    assert valid is None and test is None
    for k in range(10):
        text = BYTES.detokenize(learned(train[k]))
        assert text in {f"hello {i}\nbye\n" for i in range(40)}, text
        assert learned(train[k])[-1] == BYTES.eod


def test_truncation_rules(tmp_path):
    long_prompt = {"input": "P" * 50 + "END_OF_PROMPT ", "output": "ANSWER"}
    long_answer = {"input": "short ", "output": "A" * 100}
    rows = [long_prompt, long_answer]
    root = write_root(tmp_path / "t", n=(2, 0, 0), rows=lambda i: rows[i])
    cfg = make_cfg(root, train_iters=1, gbs=2, do_validation=False, do_test=False)
    train = build_datasets(cfg, BYTES)[0]
    texts = sorted(BYTES.detokenize(train[k]["tokens"].tolist() + [train[k]["labels"][-1]]) for k in range(2))
    # prompt cut from the left: its end, next to the answer, survives; the answer stays whole
    assert any(t.endswith("END_OF_PROMPT ANSWER") and len(t) == SEQ + 1 - 1 for t in texts)
    # the input is cut first, here entirely, then the answer from the right (its EOD goes too)
    assert "A" * (SEQ + 1) in texts
    # a "right" cut of the input removes the prompt's end instead
    cfg.dataset.truncation_method = "right"
    train = build_datasets(cfg, BYTES)[0]
    texts = [BYTES.detokenize(train[k]["tokens"].tolist()) for k in range(2)]
    assert any(t.startswith("PPPP") and "END_OF_PROMPT" not in t and "ANSWER" in t for t in texts)
    # an answer that loses every token is skipped (counted in a warning), never trained on
    root = write_root(tmp_path / "g", n=(2, 0, 0), rows=lambda i: [{"input": "x" * 200, "output": "y"}, long_answer][i])
    cfg = make_cfg(root, train_iters=1, gbs=2, do_validation=False, do_test=False, truncation_field="output")
    assert build_datasets(cfg, BYTES)[0].n == 1


def test_packing_first_fit_rows_and_boundaries(tmp_path):
    rows = pack_rows([5, 3, 8, 2, 6, 4], 10)
    assert sorted(sum(rows, [])) == list(range(6)) and all(sum([5, 3, 8, 2, 6, 4][i] for i in r) <= 10 for r in rows)
    assert len(rows) == 3  # 28 positions in rows of 10: the minimum

    root = write_root(tmp_path / "p")
    cfg = make_cfg(root, mbs=1, packed=True, do_test=False)  # the test split is never packed
    train = build_datasets(cfg, BYTES)[0]
    files = os.listdir(os.path.join(root, "packed"))
    assert len(files) == 2 and all(f.endswith(".npz") for f in files)  # train and validation, next to the data
    s = train[0]
    mask = s["attention_mask"][0]
    cu = s["cu_seqlens"].tolist()
    assert len(cu) > 3  # several examples in one row
    for a, b in zip(cu, cu[1:]):
        assert s["position_ids"][a:b].tolist() == list(range(b - a))
        block = mask[a:b, a:b]
        assert torch.equal(block, torch.ones(b - a, b - a, dtype=torch.bool).triu(1))  # causal inside
        assert mask[a:b, :a].all() and mask[a:b, b:].all()  # nothing across examples
    # every example's answer is learned in exactly one row per epoch
    answers = sorted(tuple(BYTES.tokenize(qa(i)["output"]) + [BYTES.eod]) for i in range(40))
    n_rows = train.n
    got = []
    for r in range(n_rows):
        s = train[r]
        for a, b in zip(s["cu_seqlens"].tolist(), s["cu_seqlens"].tolist()[1:]):
            seg = [lab for lab, m in zip(s["labels"][a:b].tolist(), s["loss_mask"][a:b].tolist()) if m]
            if seg:
                got.append(tuple(seg))
    assert sorted(got) == answers and n_rows < 40

    # reused: a second build reads the packed file and never re-tokenizes the JSONL
    import plugtron.data.sft as sft

    mtimes = {f: os.path.getmtime(os.path.join(root, "packed", f)) for f in files}
    real = sft.load_examples
    sft.load_examples = lambda *a: (_ for _ in ()).throw(AssertionError("re-tokenized"))
    try:
        again = build_datasets(cfg, BYTES)[0]
    finally:
        sft.load_examples = real
    assert torch.equal(again[3]["tokens"], train[3]["tokens"])
    assert mtimes == {f: os.path.getmtime(os.path.join(root, "packed", f)) for f in files}


def test_packed_seq_params_for_the_thd_path():
    p = packed_seq_params(torch.tensor([0, 5, 12, 20, 64], dtype=torch.int32))
    assert p.qkv_format == "thd" and p.cu_seqlens_q.tolist() == [0, 5, 12, 20, 64] and p.max_seqlen_q == 44


def _per_example_losses(model, sample, packed):
    tokens, labels = sample["tokens"][None], sample["labels"][None]
    mask = sample["attention_mask"][None] if packed else None
    with torch.no_grad():
        loss = model(tokens, sample["position_ids"][None], mask, labels=labels)[0]
    cu = sample["cu_seqlens"].tolist() if packed else [0, SEQ]
    out = {}
    for a, b in zip(cu, cu[1:]):
        m = sample["loss_mask"][a:b]
        if m.sum() > 0:
            key = tuple(sample["tokens"][a:b][:4].tolist()) + tuple(lab for lab, k in zip(sample["labels"][a:b].tolist(), m.tolist()) if k)
            out[key] = float((loss[a:b] * m).sum() / m.sum())
    return out


def test_packed_and_unpacked_give_the_same_per_example_loss(tmp_path):
    import _mcore_helpers as h
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    root = write_root(tmp_path / "e", n=(24, 0, 0))
    unpacked = build_datasets(make_cfg(root, train_iters=6, do_validation=False, do_test=False), BYTES)[0]
    packed = build_datasets(make_cfg(root, train_iters=6, mbs=1, packed=True, do_validation=False, do_test=False), BYTES)[0]
    with h.single_process():
        config = h.tiny_gpt_config()
        model = GPTModel(config=config, transformer_layer_spec=get_gpt_layer_local_spec(), vocab_size=320,
                         max_sequence_length=SEQ, position_embedding_type="learned_absolute").eval()
        ref, got = {}, {}
        for k in range(unpacked.n):
            ref.update(_per_example_losses(model, unpacked[k], packed=False))
        for r in range(packed.n):
            got.update(_per_example_losses(model, packed[r], packed=True))
    assert len(ref) == 24 and set(got) == set(ref)
    worst = max(abs(got[k] - ref[k]) for k in ref)
    assert worst < 1e-5, worst
    assert max(ref.values()) - min(ref.values()) > 1e-3  # the losses differ per example: the check has teeth


def test_order_is_a_function_of_seed_and_position(tmp_path):
    root = write_root(tmp_path / "o")
    a = build_datasets(make_cfg(root, train_iters=30), BYTES)[0]
    b = build_datasets(make_cfg(root, train_iters=30), BYTES)[0]
    c = build_datasets(make_cfg(root, train_iters=30, seed=99), BYTES)[0]
    it = MicroBatchIterator(a, 2, 4)
    run = [torch.cat([m["tokens"] for m in it.global_batch()]) for _ in range(30)]
    for k in (0, 7, 29):  # a fresh run (another dataset object) resumed after k global batches
        resumed = MicroBatchIterator(b, 2, 4, consumed_samples=4 * k)
        assert torch.equal(torch.cat([m["tokens"] for m in resumed.global_batch()]), run[k])
    assert not all(torch.equal(a[k]["tokens"], c[k]["tokens"]) for k in range(8))
    assert len(a) == 120  # 30 x 4 samples: 3 epochs of 40, each in its own order
    assert [a.row_index(i) for i in range(40)] != [a.row_index(40 + i) for i in range(40)]
    assert sorted(a.row_index(40 + i) for i in range(40)) == list(range(40))


def test_bad_inputs(tmp_path):
    root = write_root(tmp_path / "b")
    cfg = make_cfg(root, mbs=2, packed=True)
    with pytest.raises(ConfigError, match="train.micro_batch_size: 2, but packed sequences .* need micro_batch_size 1"):
        cfg.validate(1)
    cfg = make_cfg(root, mbs=1, packed=True)
    cfg.dataset.packed_sequence_specs.packed_sequence_size = 128
    with pytest.raises(ConfigError, match="packed_sequence_size: 128 differs from dataset.seq_length 64"):
        cfg.validate(1)
    cfg = make_cfg(root)
    cfg.model.seq_length = 128
    with pytest.raises(ConfigError, match="dataset.seq_length: 64 differs from model.seq_length 128"):
        cfg.validate(1)
    with pytest.raises(DataError, match=r"dataset_root: .*nowhere is not a directory"):
        build_datasets(make_cfg(str(tmp_path / "nowhere")), BYTES)
    os.remove(os.path.join(root, "validation.jsonl"))  # optional: the run goes on without it
    train, valid, test = build_datasets(make_cfg(root), BYTES)
    assert train is not None and valid is None and test is not None
    assert build_datasets(make_cfg(root, do_validation=False), BYTES)[1] is None
    bad_test = write_root(tmp_path / "t", extra=())
    with open(os.path.join(bad_test, "test.jsonl"), "a") as f:
        f.write('{"input": "q"}\n')
    with pytest.raises(DataError, match=r"test\.jsonl:9: expected .*'output'"):  # before any packing
        build_datasets(make_cfg(bad_test, mbs=1, packed=True), BYTES)
    assert not os.path.isdir(os.path.join(bad_test, "packed"))
    bad = write_root(tmp_path / "m", extra=['{"input": "q", "output": 3}'])
    with pytest.raises(DataError, match=r"training\.jsonl:41: expected a JSON object with 'input' and 'output' strings"):
        build_datasets(make_cfg(bad), BYTES)
    bad = write_root(tmp_path / "j", extra=["{not json"])
    with pytest.raises(DataError, match=r"training\.jsonl:41: .*Expecting property name"):
        build_datasets(make_cfg(bad), BYTES)
    empty = write_root(tmp_path / "z", n=(0, 5, 5))
    with pytest.raises(DataError, match=r"training\.jsonl: empty \(no examples\)"):
        build_datasets(make_cfg(empty), BYTES)
    cfg = make_cfg(root, do_validation=False)
    cfg.model.vocab_size = 200
    with pytest.raises(DataError, match="model.vocab_size: 200 is smaller than the tokenizer's 257"):
        build_datasets(cfg, BYTES)


def test_packed_sft_training_runs_valid_and_test(tmp_path):
    from plugtron.config import load_config
    from plugtron.training import train

    root = write_root(tmp_path / "r", n=(60, 10, 10))
    cfg = load_config(None, ["model.num_layers=2", "model.hidden_size=64", f"model.seq_length={SEQ}",
                             "train.micro_batch_size=1", "train.global_batch_size=4", "train.train_iters=20",
                             "train.eval_interval=10", "train.eval_iters=2", "scheduler.lr_warmup_iters=2",
                             "optimizer.lr=3e-3", "logger.log_interval=10"])
    cfg.dataset = FinetuningDatasetConfig(dataset_root=root, seq_length=SEQ, do_validation=True, do_test=True,
                                          packed_sequence_specs=PackedSequenceSpecs(packed_sequence_size=SEQ))
    out = train(cfg)
    losses = out["losses"]
    assert [it for it, _ in out["eval"]["valid"]] == [10, 20]
    assert [it for it, _ in out["eval"]["test"]] == [20]
    assert sum(losses[-3:]) / 3 < losses[0] - 1.0, losses


def test_yaml_sft_section_replaces_the_recipes_dataset(tmp_path):
    from plugtron.config import load_config

    y = tmp_path / "sft.yaml"
    y.write_text("model: {seq_length: 64}\ntrain: {micro_batch_size: 1}\n"
                 "dataset:\n  dataset_root: /data/sft\n  seq_length: 64\n  data_format: chat\n"
                 "  packed_sequence_specs: {packed_sequence_size: 64}\n")
    cfg = load_config(str(y), ["dataset.do_test=false"])
    ds = cfg.dataset
    assert isinstance(ds, FinetuningDatasetConfig) and ds.packing and ds.data_format == "chat" and not ds.do_test
    cfg.validate(1)
    back = load_config(None, ["dataset.dataset_root=/d", "dataset.seq_length=128"]).dataset
    assert isinstance(back, FinetuningDatasetConfig) and back.seq_length == 128


def test_explicit_packed_path_is_written_then_used_alone(tmp_path):
    root = write_root(tmp_path / "x")
    target = tmp_path / "elsewhere" / "train_packed.npz"
    cfg = make_cfg(root, mbs=1, packed=True, do_validation=False, do_test=False)
    cfg.dataset.packed_sequence_specs.packed_train_data_path = str(target)
    first = build_datasets(cfg, BYTES)[0]
    assert target.is_file() and not os.path.exists(os.path.join(root, "packed"))
    os.remove(os.path.join(root, "training.jsonl"))  # the packed file stands on its own
    assert torch.equal(build_datasets(cfg, BYTES)[0][5]["tokens"], first[5]["tokens"])
    cfg.dataset.packed_sequence_specs.packed_train_data_path = None
    with pytest.raises(DataError, match=r"training\.jsonl not found"):
        build_datasets(cfg, BYTES)


def _two_rank_packing(rank, world_size, root, out_dir):
    cfg = make_cfg(root, mbs=1, packed=True, do_test=False)
    train = build_datasets(cfg, BYTES)[0]
    torch.save(torch.stack([train[i]["tokens"] for i in range(8)]), f"{out_dir}/rows{rank}.pt")
    bad = make_cfg(os.path.join(out_dir, "broken"), mbs=1, packed=True, do_validation=False, do_test=False)
    with pytest.raises(DataError, match=r"training\.jsonl:41|rank 0 failed"):  # every rank stops, none hangs
        build_datasets(bad, BYTES)


@pytest.mark.slow
def test_two_ranks_pack_once_and_agree(tmp_path):
    import _mcore_helpers as h

    root = write_root(tmp_path / "d")
    write_root(tmp_path / "broken", extra=["{not json"])
    h.spawn(_two_rank_packing, 2, root, str(tmp_path))
    assert torch.equal(torch.load(tmp_path / "rows0.pt"), torch.load(tmp_path / "rows1.pt"))
    assert len(os.listdir(os.path.join(root, "packed"))) == 2  # train + validation, no stray temporaries
