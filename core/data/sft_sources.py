"""Where SFT records come from: one source per split, found in ``dataset.dataset_root`` (torch-free).

A split is ``training``/``validation``/``test`` with one of these forms (two of them for one split is
an error naming both):

| form                    | read with                                            | a record is named   |
|-------------------------|------------------------------------------------------|---------------------|
| ``NAME.jsonl``          | ``json``, one object per line                        | ``FILE:LINE``       |
| ``NAME.json``           | ``json``: an array of objects (or JSON lines)        | ``FILE:LINE`` / ``FILE row I`` |
| ``NAME.parquet``        | Hugging Face ``datasets`` (the ``datasets`` extra)   | ``FILE row I``      |
| ``NAME.arrow``          | ``datasets`` (Arrow IPC stream or file)              | ``FILE row I``      |
| ``NAME/`` directory     | ``datasets.load_from_disk`` (``Dataset.save_to_disk``) | ``DIR row I``     |

``dataset_root`` may itself be a saved ``DatasetDict`` (``dataset_dict.json``): its ``train``,
``validation`` (or ``valid``/``val``) and ``test`` splits are used. Rows are 0-based, as in
``dataset[I]``. Arrow gives every row every column, a missing field as null: nulls are dropped from
records (a null is read as "absent", e.g. a message without ``train``).

``dataset.columns`` renames source columns to the names the format reads (``{messages: conversation}``:
the format's ``messages`` is the source's ``conversation``). ``val_proportion``/``test_proportion``
carve those splits out of the training source when their files are absent (``carve``).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Dict, Iterator, List, Optional, Tuple

from plugtron.errors import DataError

SPLIT_NAMES = {"train": "training", "valid": "validation", "test": "test"}
DATASET_DICT_SPLITS = {"train": ("train",), "valid": ("validation", "valid", "val"), "test": ("test",)}
SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow")
EXTRA_HINT = "install the optional extra: pip install 'plugtron[datasets]'"


def _datasets(what: str):
    try:
        import datasets
    except ImportError:
        raise DataError(f"{what}: reading it needs Hugging Face datasets, which is not installed; "
                        f"{EXTRA_HINT} (or convert it to JSONL)") from None
    datasets.disable_progress_bars()
    return datasets


def _drop_nulls(value):
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


class Source:
    """One split's records: ``records()`` yields ``(where, record)``, ``where`` naming file and line or row.
    ``keep``: only these record ordinals (a split carved out of another source)."""

    def __init__(self, path: str, kind: str, name: str, columns: Optional[Dict[str, str]] = None,
                 dict_split: Optional[str] = None, keep: Optional[List[int]] = None, carved: str = "") -> None:
        self.path, self.kind, self.name = path, kind, name
        self.columns, self.dict_split, self.keep, self.carved = dict(columns or {}), dict_split, keep, carved
        self._table = None

    def __str__(self) -> str:
        where = f"{self.path} (split {self.dict_split})" if self.dict_split else self.path
        return f"{where} ({self.carved})" if self.carved else where

    def view(self, name: str, keep: List[int], carved: str) -> "Source":
        out = Source(self.path, self.kind, name, self.columns, self.dict_split, sorted(keep), carved)
        out._table = self._table  # read once (a Parquet file is loaded into memory)
        return out

    # -- reading -------------------------------------------------------------------------------
    def _dataset(self):
        if self._table is None:
            datasets = _datasets(self.path)
            try:
                if self.kind == "saved":
                    loaded = datasets.load_from_disk(self.path)
                    self._table = loaded[self.dict_split] if self.dict_split else loaded
                else:
                    with tempfile.TemporaryDirectory() as cache:  # in memory: no cache left behind
                        self._table = datasets.load_dataset(self.kind, data_files=self.path, split="train",
                                                            keep_in_memory=True, cache_dir=cache)
            except Exception as err:  # datasets/pyarrow raise many kinds; the message says which file
                raise DataError(f"{self.path}: cannot read it as {self.kind} with Hugging Face datasets "
                                f"({type(err).__name__}: {err})") from None
            missing = [c for c in self.columns.values() if c not in self._table.column_names]
            if missing:
                raise DataError(f"{self}: no column {', '.join(map(repr, missing))} (dataset.columns); "
                                f"its columns: {', '.join(self._table.column_names)}")
        return self._table

    def _raw(self) -> Iterator[Tuple[str, object]]:
        if self.kind in ("jsonl", "json"):
            yield from _json_records(self.path, self.kind)
            return
        for i, row in enumerate(self._dataset()):
            yield f"{self} row {i}", _drop_nulls(row)

    def records(self) -> Iterator[Tuple[str, object]]:
        keep = set(self.keep) if self.keep is not None else None
        for k, (where, obj) in enumerate(self._raw()):
            if keep is None or k in keep:
                yield where, self._rename(obj, where)

    def _rename(self, obj, where: str):
        if not self.columns or not isinstance(obj, dict):
            return obj
        out = {k: v for k, v in obj.items() if k not in self.columns.values()}
        for name, column in self.columns.items():
            if column in obj:
                out[name] = obj[column]
            elif self.kind in ("jsonl", "json"):
                raise DataError(f"{where}: no key {column!r} (dataset.columns.{name} reads it); "
                                f"the record has {', '.join(map(repr, obj)) or 'no keys'}")
        return out

    def count(self) -> int:
        if self.kind in ("jsonl", "json"):
            return sum(1 for _ in self._raw())
        return len(self._dataset())

    def check_readable(self) -> None:
        """Cheap: the extra is installed and the file opens (tabular sources), columns present."""
        if self.kind not in ("jsonl", "json"):
            self._dataset()

    def fingerprint(self) -> dict:
        """What identifies the records for a cache key: every file's size and mtime, the renaming and
        the carved rows."""
        if os.path.isfile(self.path):
            files = [self.path]
        else:  # a saved DatasetDict: its split's directory and index only (packed files are written beside them)
            top = os.path.join(self.path, self.dict_split) if self.dict_split else self.path
            files = sorted(os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs)
            files += [os.path.join(self.path, "dataset_dict.json")] if self.dict_split else []
        stats = [(os.path.relpath(f, self.path) if f != self.path else "", os.stat(f).st_size, os.stat(f).st_mtime_ns)
                 for f in files]
        return {"source": os.path.abspath(self.path), "kind": self.kind, "split": self.dict_split, "files": stats,
                "columns": sorted(self.columns.items()), "keep": self.keep, "carved": self.carved}


def _json_records(path: str, kind: str) -> Iterator[Tuple[str, object]]:
    if not os.path.isfile(path):
        raise DataError(f"dataset.dataset_root: {path} not found")
    if kind == "json":
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            whole = json.loads(text)
        except ValueError:
            whole = None  # JSON lines in a .json file (what datasets' to_json writes): read line by line
        if whole is not None:
            if not isinstance(whole, list):
                raise DataError(f"{path}: expected a JSON array of records (or one JSON object per line), "
                                f"got a JSON {type(whole).__name__}")
            for i, obj in enumerate(whole):
                yield f"{path} row {i}", obj
            return
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as err:
                raise DataError(f"{path}:{lineno}: not JSON ({err})") from None
            yield f"{path}:{lineno}", obj


def as_source(path_or_source, columns: Optional[Dict[str, str]] = None) -> Source:
    """A ``Source`` for a file path (its suffix says the kind; a directory is a saved dataset)."""
    if isinstance(path_or_source, Source):
        return path_or_source
    path = str(path_or_source)
    if os.path.isdir(path):
        return Source(path, "saved", os.path.basename(os.path.normpath(path)), columns)
    stem, suffix = os.path.splitext(path)
    kind = suffix[1:] if suffix in SUFFIXES else "jsonl"
    return Source(path, kind, os.path.basename(stem), columns)


def find_split(root: str, split: str, columns: Optional[Dict[str, str]] = None) -> Optional[Source]:
    """The source of ``split`` (train/valid/test) in ``root``; ``None`` if it has none."""
    if os.path.isfile(os.path.join(root, "dataset_dict.json")):
        names = [n for n in DATASET_DICT_SPLITS[split] if os.path.isdir(os.path.join(root, n))]
        return Source(root, "saved", SPLIT_NAMES[split], columns, dict_split=names[0]) if names else None
    name = SPLIT_NAMES[split]
    found = [os.path.join(root, name + s) for s in SUFFIXES if os.path.isfile(os.path.join(root, name + s))]
    if os.path.isdir(os.path.join(root, name)):
        found.append(os.path.join(root, name))
    if len(found) > 1:
        raise DataError(f"dataset.dataset_root: {' and '.join(found)} both hold the {name} split; keep one")
    return as_source(found[0], columns) if found else None


def expected_layout() -> str:
    return ("training.jsonl, .json, .parquet, .arrow or a training/ directory from Dataset.save_to_disk, "
            "optionally validation.* and test.* alike; or a DatasetDict saved with save_to_disk")


PROPORTIONS = {"valid": "val_proportion", "test": "test_proportion"}


def resolve_splits(ds, require_train: bool = True) -> Dict[str, Optional[Source]]:
    """Every split's source (``None``: absent), validation/test carved out of the training source where
    ``dataset.val_proportion``/``test_proportion`` ask for it. Reads only file names and, when
    carving, the training source's record count. ``require_train=False``: a prepacked training file
    stands in for an absent source."""
    root = os.path.abspath(os.path.expanduser(ds.dataset_root))
    if not os.path.isdir(root):
        raise DataError(f"dataset.dataset_root: {root} is not a directory (expected one holding {expected_layout()})")
    columns = getattr(ds, "columns", None)
    found = {split: find_split(root, split, columns) for split in SPLIT_NAMES}
    if found["train"] is None and require_train:
        raise DataError(f"dataset.dataset_root: {os.path.join(root, 'training.jsonl')} not found (the training split "
                        f"is required; also read: {expected_layout()})")
    shares = {split: float(getattr(ds, field, None) or 0.0) for split, field in PROPORTIONS.items()}
    for split, share in shares.items():
        if share and found[split] is not None:
            raise DataError(f"dataset.{PROPORTIONS[split]}: {share} carves a {SPLIT_NAMES[split]} split out of the "
                            f"training data, but {found[split]} exists; set one of them")
    if any(shares.values()):
        if found["train"] is None:
            raise DataError(f"dataset.val_proportion/test_proportion: no training records in {root} to carve from")
        found.update(carve(found["train"], shares, ds.seed))
    return found


def carve(train: Source, shares: Dict[str, float], seed: int) -> Dict[str, Source]:
    """Split ``train``'s records by a permutation seeded with ``seed`` (the same split every run):
    ``round(n * share)`` records (at least one) for each split with a share, the rest for training."""
    import numpy

    n = train.count()
    counts = {split: max(1, round(n * share)) for split, share in shares.items() if share}
    if n - sum(counts.values()) < 1:
        asked = ", ".join(f"dataset.{PROPORTIONS[s]} {shares[s]}" for s in counts)
        raise DataError(f"{train}: {n} record(s) cannot give {asked} (at least one record each) and keep one "
                        "for training")
    order = numpy.random.default_rng([seed, 0x5F17]).permutation(n).tolist()
    out, start = {}, 0
    for split, k in counts.items():
        out[split] = train.view(SPLIT_NAMES[split], order[start:start + k],
                                f"{SPLIT_NAMES[split]}: {k} of {n} records, dataset.{PROPORTIONS[split]} {shares[split]}, "
                                f"dataset.seed {seed}")
        start += k
    out["train"] = train.view(train.name, order[start:], f"training: {n - start} of {n} records after carving")
    return out
