"""SFT sources beyond JSONL (issue 25): JSON arrays, Parquet and Arrow files and ``save_to_disk``
directories read through Hugging Face ``datasets`` give exactly the examples of the same records as
JSONL; ``dataset.columns`` renames columns; validation/test carved out of the training records with
``val_proportion``/``test_proportion`` are disjoint and fixed by the seed; the packed cache key follows
the source. Torch-free and small: datasets writes and reads a few rows."""

import json
import sys

import datasets  # the test extra installs it (pip install -e ".[test]"); these tests must run, never skip
import pytest

from plugtron.config import FinetuningDatasetConfig, PackedSequenceSpecs
from plugtron.data.packing import packed_path
from plugtron.data.sft_examples import check_file, load_examples
from plugtron.data.sft_sources import find_split, resolve_splits
from plugtron.data.tokenizers import ByteLevelTokenizer
from plugtron.errors import DataError

BYTE = ByteLevelTokenizer()


def records(n=8):
    """Conversations where some messages carry ``train`` and some not (Arrow then stores nulls)."""
    return [{"messages": [{"role": "user", "content": f"question {i}?"},
                          {"role": "assistant", "content": f"draft {i}", "train": False},
                          {"role": "user", "content": "again"},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(n)]


def ds_cfg(root, **kw):
    return FinetuningDatasetConfig(**{"dataset_root": str(root), "seq_length": 256, "data_format": "chat",
                                      "chat_template": "chatml", **kw})


def as_lists(examples):
    return [(ids.tolist(), answer.tolist()) for ids, answer in examples]


def write(root, name, rows, kind):
    root.mkdir(exist_ok=True)
    if kind == "jsonl":
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "json":
        (root / f"{name}.json").write_text(json.dumps(rows))
    elif kind == "parquet":
        datasets.Dataset.from_list(rows).to_parquet(str(root / f"{name}.parquet"))
    elif kind == "arrow_file":  # Arrow IPC file format (pyarrow/feather), not datasets' stream format
        import pyarrow as pa

        table = pa.Table.from_pylist(rows)
        with pa.ipc.new_file(str(root / f"{name}.arrow"), table.schema) as w:
            w.write_table(table)
    elif kind == "saved":
        datasets.Dataset.from_list(rows).save_to_disk(str(root / name))
    return root


@pytest.mark.parametrize("kind", ["json", "parquet", "arrow_file", "saved"])
def test_every_source_gives_the_jsonl_examples(tmp_path, kind):
    expected = as_lists(load_examples(str(write(tmp_path / "j", "training", records(), "jsonl") / "training.jsonl"),
                                      ds_cfg(tmp_path / "j"), BYTE)[0])
    root = write(tmp_path / kind, "training", records(), kind)
    source = resolve_splits(ds_cfg(root))["train"]
    assert source.kind == {"arrow_file": "arrow"}.get(kind, kind)
    assert as_lists(load_examples(source, ds_cfg(root), BYTE)[0]) == expected
    # the null "train" of the messages that had none was dropped: the drafts alone are not learned
    assert sum(a.sum() for _, a in load_examples(source, ds_cfg(root), BYTE)[0]) == sum(
        sum(a) for _, a in expected)


def test_saved_dataset_dict_and_column_mapping(tmp_path):
    rows = [{"conversation": r["messages"], "id": i} for i, r in enumerate(records(4))]
    root = tmp_path / "dd"
    d = datasets.Dataset.from_list(rows)
    datasets.DatasetDict(train=d, validation=d.select([0, 1])).save_to_disk(str(root))
    ds = ds_cfg(root, columns={"messages": "conversation"})
    found = resolve_splits(ds)
    assert found["test"] is None and check_file(found["valid"], ds) == 2
    plain = write(tmp_path / "j", "training", records(4), "jsonl")
    assert as_lists(load_examples(found["train"], ds, BYTE)[0]) == as_lists(
        load_examples(str(plain / "training.jsonl"), ds_cfg(plain), BYTE)[0])
    with pytest.raises(DataError, match=r"no column 'talk' \(dataset.columns\); its columns: conversation, id"):
        check_file(resolve_splits(ds_cfg(root, columns={"messages": "talk"}))["train"], ds)
    # JSONL: the same renaming, and a record without the column names its line
    (plain / "training.jsonl").write_text(json.dumps({"conversation": records(1)[0]["messages"]}) + "\n{}\n")
    with pytest.raises(DataError, match=r"training.jsonl:2: no key 'conversation' \(dataset.columns.messages"):
        check_file(str(plain / "training.jsonl"), ds_cfg(plain, columns={"messages": "conversation"}))


def test_bad_rows_name_file_and_row_and_the_expected_shape(tmp_path):
    rows = records(3)
    rows[2] = {"messages": [{"role": "narrator", "content": "x"}]}
    root = write(tmp_path / "p", "training", rows, "parquet")
    with pytest.raises(DataError, match=r"training.parquet row 2: expected a JSON object with 'messages': a list "
                                        r"of \{'role', 'content'\} messages \(message 0: expected"):
        check_file(find_split(str(root), "train"), ds_cfg(root))
    (root / "training.jsonl").write_text("{}\n")
    with pytest.raises(DataError, match=r"training.jsonl and .*training.parquet both hold the training split"):
        resolve_splits(ds_cfg(root))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "training.json").write_text('{"messages": []}')
    with pytest.raises(DataError, match=r"training.json: expected a JSON array of records .* got a JSON dict"):
        check_file(find_split(str(tmp_path / "bad"), "train"), ds_cfg(tmp_path / "bad"))


def test_a_missing_datasets_extra_is_named(tmp_path, monkeypatch):
    root = write(tmp_path / "p", "training", records(2), "parquet")
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(DataError, match=r"training.parquet: reading it needs Hugging Face datasets, which is not "
                                        r"installed; install the optional extra: pip install 'plugtron\[datasets\]'"):
        check_file(find_split(str(root), "train"), ds_cfg(root))


def test_carved_splits_are_disjoint_and_fixed_by_the_seed(tmp_path):
    root = write(tmp_path / "j", "training", records(20), "jsonl")

    def contents(**kw):
        found = resolve_splits(ds_cfg(root, **kw))
        return {s: [r["messages"][0]["content"] for _, r in src.records()] for s, src in found.items() if src}

    a = contents(val_proportion=0.1, test_proportion=0.15)
    assert [len(a[s]) for s in ("train", "valid", "test")] == [15, 2, 3]
    assert sorted(a["train"] + a["valid"] + a["test"]) == sorted(f"question {i}?" for i in range(20))
    assert a == contents(val_proportion=0.1, test_proportion=0.15)  # the same every run
    assert a["valid"] != contents(val_proportion=0.1, test_proportion=0.15, seed=7)["valid"]
    assert set(contents(val_proportion=0.01)) == {"train", "valid"}  # at least one record
    (root / "validation.jsonl").write_text((root / "training.jsonl").read_text())
    with pytest.raises(DataError, match=r"dataset.val_proportion: 0.1 carves a validation split out of the training "
                                        r"data, but .*validation.jsonl exists; set one of them"):
        resolve_splits(ds_cfg(root, val_proportion=0.1))
    few = write(tmp_path / "few", "training", records(2), "jsonl")
    with pytest.raises(DataError, match=r"2 record\(s\) cannot give dataset.val_proportion 0.5, "
                                        r"dataset.test_proportion 0.1"):
        resolve_splits(ds_cfg(few, val_proportion=0.5, test_proportion=0.1))


def test_config_refuses_bad_proportions_and_columns():
    from plugtron.config import load_config
    from plugtron.errors import ConfigError

    base = ["dataset.dataset_root=/d", "dataset.seq_length=128", "model.seq_length=128"]
    for overrides, message in [(["dataset.val_proportion=1.5"], "dataset.val_proportion: 1.5 is not a fraction"),
                               (["dataset.val_proportion=0.6", "dataset.test_proportion=0.5"], "sum < 1"),
                               (["dataset.columns={a: x, b: x}"], "reads one source column under two names")]:
        cfg = load_config(None, base + overrides)
        assert any(message in p for p in cfg.dataset.problems(cfg.train)), message  # what validate() reports
    with pytest.raises(ConfigError, match="dataset.colums"):
        load_config(None, base + ["dataset.colums={messages: c}"])


def test_packed_cache_key_follows_the_source(tmp_path):
    root = write(tmp_path / "p", "training", records(4), "parquet")

    def key(**kw):
        ds = ds_cfg(root, packed_sequence_specs=PackedSequenceSpecs(packed_sequence_size=256), **kw)
        return packed_path(resolve_splits(ds)["train"], ds, BYTE)

    first = key()
    assert first == key() and first.startswith(str(root / "packed" / "training_"))
    variants = {first, key(columns={"messages": "messages"}), key(val_proportion=0.25),
                key(val_proportion=0.25, seed=5)}
    assert len(variants) == 4
    write(root, "training", records(5), "parquet")  # new contents: a new key
    assert key() != first


def test_a_saved_dataset_dict_keeps_its_packed_files_reused(tmp_path):
    """Packed files go inside a saved DatasetDict (``packed/``): writing them must not change the key."""
    from plugtron.config import ConfigContainer
    from plugtron.data.sft import build_sft_datasets

    root = tmp_path / "dd"
    d = datasets.Dataset.from_list(records(6))
    datasets.DatasetDict(train=d, validation=d.select([0, 1])).save_to_disk(str(root))

    def cfg():
        c = ConfigContainer(dataset=ds_cfg(root, do_test=False, packed_sequence_specs=PackedSequenceSpecs(
            packed_sequence_size=256)))
        c.train.micro_batch_size, c.train.global_batch_size, c.train.train_iters = 1, 2, 2
        c.train.eval_interval, c.train.eval_iters = 2, 1
        return c

    build_sft_datasets(cfg(), BYTE)
    files = sorted(p.name for p in (root / "packed").iterdir())
    assert len(files) == 2 and files[0].startswith("training_") and files[1].startswith("validation_")
    build_sft_datasets(cfg(), BYTE)
    assert sorted(p.name for p in (root / "packed").iterdir()) == files  # reused, not packed again


def test_data_inspect_reads_a_carved_split_of_a_parquet_file(tmp_path, capsys):
    from plugtron.cli.main import main

    root = write(tmp_path / "p", "training", [{"conversation": r["messages"]} for r in records(10)], "parquet")
    args = ["data", "inspect", f"dataset.dataset_root={root}", "dataset.data_format=chat", "dataset.chat_template=chatml",
            "dataset.columns={messages: conversation}", "dataset.val_proportion=0.2", "model.seq_length=256",
            "--split", "validation", "--n", "1", "--color", "never"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "training.parquet (validation: 2 of 10 records, dataset.val_proportion 0.2, dataset.seed 1234)" in out
    assert "=== 2 examples" in out and "row " in out and "[[answer" in out
    assert main(args[:-6] + ["--split", "test"]) != 0
    assert "has no test split (no file, and not carved out" in capsys.readouterr().err
