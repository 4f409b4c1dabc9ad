"""Offline packing of SFT examples into rows of ``packed_sequence_size`` positions (torch-free).

An example of ``n`` tokens takes ``n - 1`` positions (inputs ``ids[:-1]``, labels ``ids[1:]``).
Rows are filled best-fit-decreasing: longest example first, into the fullest row it still fits
(as tight as first-fit-decreasing, but O(n log n) with a sorted list instead of O(n x rows)).

A packed split is one ``.npz`` next to the data, ``<dataset_root>/packed/<split>_<hash>.npz``, where
the hash covers the source (each file's size and mtime, the column renaming, carved rows), the tokenizer and every setting that changes the
tokens; an existing file with that name is reused instead of re-tokenizing and re-packing.
Layout (ragged, no padding stored): ``tokens``/``answer`` = all examples' tokens in row order,
``lengths`` = tokens per example, ``row_offsets`` = first example of each row (+ the end).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
from typing import List, Sequence

import numpy

from plugtron.errors import DataError

FORMAT = 3  # 2: chat templates, formats and loss modes; 3: sources (datasets, columns, carved splits)


def pack_rows(sizes: Sequence[int], capacity: int) -> List[List[int]]:
    """Indices of ``sizes`` grouped into rows of at most ``capacity`` (best-fit decreasing).
    Deterministic: ties are broken by index."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    rows: List[List[int]] = []
    free: List[tuple] = []  # sorted (remaining capacity, row id)
    for i in order:
        if sizes[i] > capacity:
            raise DataError(f"an example of {sizes[i]} positions does not fit a packed row of {capacity}")
        k = bisect.bisect_left(free, (sizes[i], -1))
        if k < len(free):
            remaining, row = free.pop(k)
        else:
            remaining, row = capacity, len(rows)
            rows.append([])
        rows[row].append(i)
        if remaining - sizes[i] > 0:
            bisect.insort(free, (remaining - sizes[i], row))
    return rows


def packed_path(source, ds, tokenizer) -> str:
    """A content-keyed name for the packed split, next to the data. ``source``: a split's path or
    ``sft_sources.Source`` (its files' sizes and mtimes, column renaming and carved rows are keyed)."""
    from plugtron.data.chat_template import resolve
    from plugtron.data.sft_sources import as_source

    src = as_source(source, getattr(ds, "columns", None))
    template = resolve(ds.chat_template, tokenizer) if ds.data_format != "input_output" else None
    key = json.dumps({"format": FORMAT, "source": src.fingerprint(), "tokenizer": dict(tokenizer.unique_identifiers),
                      "size_per_row": ds.packed_sequence_specs.packed_sequence_size, "seq_length": ds.seq_length,
                      "format_keys": [ds.data_format, ds.input_key, ds.output_key, ds.messages_key,
                                      ds.conversations_key, ds.instruction_key, ds.role_map, ds.loss_mode,
                                      ds.truncation_field, ds.truncation_method, ds.format_options],
                      "chat_template": template.text if template else None}, sort_keys=True, default=str)
    digest = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()[:12]
    path = os.path.abspath(os.path.normpath(src.path))
    beside = path if src.dict_split else os.path.dirname(path)  # a saved DatasetDict: inside it
    return os.path.join(beside, "packed", f"{src.name}_{digest}.npz")


def write_packed(path: str, examples, capacity: int) -> None:
    rows = pack_rows([len(ids) - 1 for ids, _ in examples], capacity)
    flat = [examples[i] for row in rows for i in row]
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.npz"  # unique: never two writers on one temporary
        numpy.savez(tmp, tokens=numpy.concatenate([ids for ids, _ in flat]),
                    answer=numpy.concatenate([a for _, a in flat]),
                    lengths=numpy.asarray([len(ids) for ids, _ in flat], dtype=numpy.int64),
                    row_offsets=numpy.cumsum([0] + [len(r) for r in rows]).astype(numpy.int64),
                    capacity=numpy.asarray(capacity))
        os.replace(tmp, path)
    except OSError as err:
        raise DataError(f"dataset.packed_sequence_specs: cannot write packed data {path} ({err.strerror}); "
                        "set packed_train_data_path / packed_val_data_path to a writable place") from None


class PackedRows:
    """Rows of a packed ``.npz``: ``row(r)`` -> list of (ids, answer) examples."""

    def __init__(self, path: str, capacity: int) -> None:
        try:
            with numpy.load(path) as z:
                self.tokens, self.answer = z["tokens"], z["answer"].astype(bool)
                self.lengths, self.row_offsets = z["lengths"], z["row_offsets"]
                stored = int(z["capacity"])
        except (OSError, KeyError, ValueError) as err:
            raise DataError(f"dataset.packed_sequence_specs: {path} is not a plugtron packed file ({err})") from None
        if stored != capacity:
            raise DataError(f"dataset.packed_sequence_specs: {path} was packed for rows of {stored}, "
                            f"not packed_sequence_size {capacity}; delete it or point elsewhere")
        self.starts = numpy.concatenate([[0], numpy.cumsum(self.lengths)])

    def __len__(self) -> int:
        return len(self.row_offsets) - 1

    def row(self, r: int):
        a, b = self.row_offsets[r], self.row_offsets[r + 1]
        return [(self.tokens[self.starts[e]:self.starts[e + 1]], self.answer[self.starts[e]:self.starts[e + 1]])
                for e in range(a, b)]
