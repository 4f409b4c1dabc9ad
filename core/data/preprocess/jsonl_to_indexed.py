"""One byte range of a JSONL file -> one Megatron indexed dataset (``.bin`` + ``.idx``).

The unit of work of ``plugtron data preprocess`` (one per worker process) and of the bundled-corpus
build (``make_corpus``, the whole file, strict). A range starts at a line start; the caller knows the
1-based number of its first line, so a corrupt line is reported as ``file:line`` even from a worker.

Documents are written with Megatron-Core's ``IndexedDatasetBuilder`` (one sequence per document, EOD
appended as Megatron-LM's ``preprocess_data.py --append-eod`` does), token dtype picked by
``DType.optimal_dtype`` (uint16 below 65 500 ids, else int32), so parts of one run concatenate.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, List, Optional

import attrs

from plugtron.errors import DataError

MAX_EXAMPLES = 5  # corrupt lines quoted in the summary; the rest are only counted


@attrs.define
class PartSpec:
    path: str
    start: int  # byte offset of the first line
    end: int  # byte offset one past the range (a line start or the file size)
    first_line: int  # 1-based number of the line at ``start``
    out_prefix: str
    json_key: str = "text"
    append_eod: bool = True
    strict: bool = False


@attrs.define
class PartStats:
    docs: int = 0
    tokens: int = 0
    bytes: int = 0
    empty: int = 0  # documents with no text: skipped
    corrupt: int = 0
    examples: List[str] = attrs.field(factory=list)
    seconds: float = 0.0

    def add(self, other: "PartStats") -> None:
        for f in ("docs", "tokens", "bytes", "empty", "corrupt"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.examples.extend(other.examples[: max(MAX_EXAMPLES - len(self.examples), 0)])


def _document_text(line: bytes, key: str) -> str:
    """The text of one JSONL line; ValueError says why there is none."""
    try:
        obj = json.loads(line)  # ValueError (JSONDecodeError, UnicodeDecodeError) on bad JSON/bytes
    except RecursionError:  # nesting deeper than Python's parser goes: bad input like any other
        raise ValueError("JSON nested too deeply to parse") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise ValueError(f"no {key!r} key (keys: {', '.join(sorted(obj)[:5]) or 'none'})")
    text = obj[key]
    if not isinstance(text, str):
        raise ValueError(f"{key!r} is a {type(text).__name__}, expected a string")
    return text


def write_part(spec: PartSpec, tokenizer, report: Optional[Callable[[PartStats], None]] = None,
               report_every_s: float = 0.5) -> PartStats:
    """Tokenize lines ``[start, end)`` of ``spec.path`` into ``spec.out_prefix.{bin,idx}``.

    ``report(delta)`` receives the counts since the last report (progress across processes).
    Writes under ``.tmp`` names and renames at the end: a part that exists is complete.
    """
    import numpy
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

    dtype = DType.optimal_dtype(tokenizer.vocab_size)
    tmp = spec.out_prefix + ".tmp"
    builder = IndexedDatasetBuilder(tmp + ".bin", dtype=dtype)
    batch_tokenize = getattr(tokenizer, "tokenize_batch", None)
    stats, delta = PartStats(), PartStats()
    t0 = last = time.perf_counter()
    lineno = spec.first_line - 1
    pending: List[str] = []

    def flush() -> None:
        # Batched where the tokenizer offers it (one Rust call per batch: less Python per document).
        ids_list = batch_tokenize(pending) if batch_tokenize else [tokenizer.tokenize(t) for t in pending]
        for ids in ids_list:
            if spec.append_eod:
                ids = list(ids) + [tokenizer.eod]
            builder.add_document(numpy.asarray(ids, dtype=dtype), [len(ids)])
            delta.docs += 1
            delta.tokens += len(ids)
        pending.clear()

    with open(spec.path, "rb") as f:
        f.seek(spec.start)
        pos = spec.start
        while pos < spec.end:
            line = f.readline()
            if not line:
                break
            pos += len(line)
            lineno += 1
            delta.bytes += len(line)
            if not line.strip():
                continue  # blank line: not a document
            try:
                text = _document_text(line, spec.json_key)
            except ValueError as err:
                where = f"{spec.path}:{lineno}"
                if spec.strict:
                    builder.data_file.close()
                    os.remove(tmp + ".bin")
                    raise DataError(f"{where}: expected a JSON object with a {spec.json_key!r} string ({err})") from None
                delta.corrupt += 1
                if len(stats.examples) + len(delta.examples) < MAX_EXAMPLES:
                    delta.examples.append(f"{where}: {err}")
                continue
            if not text.strip():
                delta.empty += 1
                continue
            pending.append(text)
            if len(pending) >= 256:
                flush()
                now = time.perf_counter()
                if report is not None and now - last >= report_every_s:
                    report(delta)
                    stats.add(delta)
                    delta, last = PartStats(), now
    if pending:
        flush()
    if report is not None:
        report(delta)
    stats.add(delta)
    builder.finalize(tmp + ".idx")
    for suffix in (".bin", ".idx"):
        os.replace(tmp + suffix, spec.out_prefix + suffix)
    stats.seconds = time.perf_counter() - t0
    return stats
