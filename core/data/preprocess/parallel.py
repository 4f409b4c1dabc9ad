"""``plugtron data preprocess``: a JSONL corpus -> a Megatron indexed dataset, in parallel, resumable.

The input is cut into one byte range per worker at line starts; each worker process tokenizes its
range into a part ``<out>.partIIIofNNN.{bin,idx}`` with a ``.json`` manifest (input size/mtime,
range, tokenizer identity, text key). Parts are merged in file order with Megatron's
``IndexedDatasetBuilder.add_index``, so the output is byte-identical for any worker count.

Resumable: a rerun after a crash reuses every part whose manifest matches and only redoes the rest;
a rerun after success finds the final manifest ``<out>.json`` and does nothing. Output names follow
Megatron-LM: ``{output_prefix}_{json_key}_document.{bin,idx}``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import attrs

from plugtron.data.preprocess.jsonl_to_indexed import PartSpec, PartStats, write_part
from plugtron.errors import DataError

FORMAT = 1  # bump when the part/manifest layout changes: old parts are then redone, never mixed in


def output_name(output_prefix: str, json_key: str) -> str:
    return f"{output_prefix}_{json_key}_document"


def plan_parts(path: str, n: int) -> List[Tuple[int, int, int]]:
    """``n`` byte ranges ``(start, end, first_line)`` cut at line starts. Costs one sequential read
    of the file (counting newlines for the line numbers), about 0.1 s per 100 MB when cached."""
    size = os.path.getsize(path)
    bounds = [0]
    with open(path, "rb") as f:
        for i in range(1, n):
            target = max(i * size // n, bounds[-1])
            if target >= size:
                break
            f.seek(max(target - 1, 0))
            f.readline()  # to the start of the line after the newline at or after target-1
            bounds.append(min(f.tell(), size))
        bounds.append(size)
        bounds = sorted(set(bounds))
        ranges, line, pos = [], 1, 0
        for start, end in zip(bounds, bounds[1:]):
            f.seek(pos)
            remaining = start - pos
            while remaining > 0:  # newlines before ``start``
                block = f.read(min(remaining, 1 << 24))
                line += block.count(b"\n")
                remaining -= len(block)
            ranges.append((start, end, line))
            pos = start
    return ranges or [(0, 0, 1)]


def _identity(path: str, json_key: str, append_eod: bool, tokenizer) -> Dict:
    st = os.stat(path)
    return {"format": FORMAT, "input": os.path.abspath(path), "input_size": st.st_size,
            "input_mtime_ns": st.st_mtime_ns, "json_key": json_key, "append_eod": append_eod,
            "tokenizer": dict(tokenizer.unique_identifiers)}


def _read_manifest(path: str) -> Optional[Dict]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_manifest(path: str, data: Dict) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)


# ---- worker processes -----------------------------------------------------------------------
_TOKENIZER = None
_QUEUE = None


def _init_worker(tok_cfg, queue) -> None:
    global _TOKENIZER, _QUEUE
    from plugtron.data.tokenizers import build_tokenizer

    _TOKENIZER, _QUEUE = build_tokenizer(tok_cfg), queue


def _run_part(spec: PartSpec) -> PartStats:
    return write_part(spec, _TOKENIZER, report=lambda d: _QUEUE.put((d.docs, d.tokens, d.bytes)))


class Progress:
    """Throughput line on stderr: rewritten in place on a terminal, one line every 10 s otherwise."""

    def __init__(self, total_bytes: int, stream=None, interval: Optional[float] = None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if interval is not None else (0.5 if self.tty else 10.0)
        self.total, self.docs, self.tokens, self.bytes = max(total_bytes, 1), 0, 0, 0
        self.start = self.last = time.perf_counter()

    def update(self, docs: int, tokens: int, nbytes: int, force: bool = False) -> None:
        self.docs, self.tokens, self.bytes = self.docs + docs, self.tokens + tokens, self.bytes + nbytes
        now = time.perf_counter()
        if force or now - self.last >= self.interval:
            self.last = now
            dt = max(now - self.start, 1e-9)
            line = (f"[preprocess] {100 * self.bytes / self.total:5.1f}% | {self.docs:,} docs | "
                    f"{self.docs / dt:,.0f} docs/s | {self.tokens / dt:,.0f} tokens/s | {self.bytes / dt / 2**20:.1f} MB/s")
            self.stream.write(("\r" + line) if self.tty else (line + "\n"))
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def check_writable(final: str, output_prefix: str) -> None:
    """``DataError`` naming ``--output-prefix`` unless files next to ``final`` can be created (its
    directory is made if missing): one probe file, created and removed."""
    directory = os.path.dirname(os.path.abspath(final))
    probe = f"{final}.probe-{os.getpid()}"
    try:
        os.makedirs(directory, exist_ok=True)
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as err:
        raise DataError(f"--output-prefix: cannot write {final}.bin/.idx (from {output_prefix!r}): "
                        f"{err.strerror or err} ({directory}); choose a writable directory") from None


def preprocess(input_path: str, output_prefix: str, tok_cfg, json_key: str = "text", workers: int = 1,
               append_eod: bool = True, strict: bool = False, overwrite: bool = False,
               progress: Optional[Progress] = None, log: Callable[[str], None] = lambda s: None) -> Dict:
    """Tokenize ``input_path`` into ``output_name(output_prefix, json_key)``; returns the summary."""
    from megatron.core.datasets.indexed_dataset import DType, IndexedDatasetBuilder

    from plugtron.data.tokenizers import build_tokenizer

    if not os.path.isfile(input_path):
        raise DataError(f"--input: {input_path} not found (expected a JSONL file, one document per line)")
    if workers < 1:
        raise DataError(f"--workers: expected >= 1, got {workers}")
    final = output_name(output_prefix, json_key)
    check_writable(final, output_prefix)  # before any tokenizing: not after minutes of work
    tokenizer = build_tokenizer(tok_cfg)  # fails here, once, on a missing tokenizer file
    ident = _identity(input_path, json_key, append_eod, tokenizer)
    done = _read_manifest(final + ".json")
    have_output = os.path.exists(final + ".bin") or os.path.exists(final + ".idx")
    if not overwrite and done is not None and done.get("identity") == ident and have_output:
        log(f"{final}.bin/.idx are up to date (same input and tokenizer); nothing to do")
        return {**done["summary"], "up_to_date": True}
    if have_output and not overwrite:
        raise DataError(f"{final}.bin exists from another input or tokenizer; pass --overwrite to replace it")

    ranges = plan_parts(input_path, workers)
    n = len(ranges)
    specs = [PartSpec(input_path, s, e, line, f"{final}.part{i + 1:03d}of{n:03d}", json_key, append_eod, strict)
             for i, (s, e, line) in enumerate(ranges)]
    results: Dict[int, PartStats] = {}
    for i, spec in enumerate(specs):  # resume: keep complete parts made from this very input
        m = _read_manifest(spec.out_prefix + ".json")
        key = {**ident, "range": [spec.start, spec.end]}
        if not overwrite and m is not None and m.get("key") == key and all(
                os.path.exists(spec.out_prefix + s) for s in (".bin", ".idx")):
            results[i] = PartStats(**m["stats"])
    if results:
        log(f"resuming: {len(results)} of {n} parts already done")
    todo = [i for i in range(n) if i not in results]
    progress = progress or Progress(os.path.getsize(input_path))
    for st in results.values():
        progress.update(0, 0, st.bytes)
    t0 = progress.start = progress.last = time.perf_counter()
    if workers == 1 or len(todo) <= 1:
        for i in todo:
            results[i] = write_part(specs[i], tokenizer, report=lambda d: progress.update(d.docs, d.tokens, d.bytes))
            _write_manifest(specs[i].out_prefix + ".json", {"key": {**ident, "range": [specs[i].start, specs[i].end]},
                                                              "stats": attrs.asdict(results[i])})
    else:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # processes are the parallelism
        # fork: workers inherit the imported Megatron/torch modules instead of re-importing them
        # (~4 s each); spawn where fork does not exist.
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        queue = ctx.Queue()
        with ctx.Pool(min(workers, len(todo)), initializer=_init_worker, initargs=(tok_cfg, queue)) as pool:
            pending = {i: pool.apply_async(_run_part, (specs[i],)) for i in todo}
            failure: Optional[BaseException] = None
            while pending:
                _drain(queue, progress, timeout=0.2)
                for i in [i for i, r in pending.items() if r.ready()]:
                    try:
                        results[i] = pending.pop(i).get()  # re-raises a worker's exception here
                    except Exception as err:  # let the other parts finish: a rerun resumes from them
                        failure = failure or err
                        continue
                    _write_manifest(specs[i].out_prefix + ".json", {"key": {**ident, "range": [specs[i].start, specs[i].end]},
                                                                      "stats": attrs.asdict(results[i])})
            _drain(queue, progress, timeout=0.0)
            if failure is not None:
                raise failure
    progress.update(0, 0, 0, force=True)
    progress.close()

    total = PartStats()
    for i in range(n):
        total.add(results[i])
    if total.docs == 0:
        _remove_parts(specs)
        raise DataError(f"{input_path}: no documents with a non-empty {json_key!r} string "
                        f"({total.corrupt} corrupt, {total.empty} empty lines)"
                        + (f"; first: {total.examples[0]}" if total.examples else ""))
    dtype = DType.optimal_dtype(tokenizer.vocab_size)
    if n == 1:  # nothing to merge: the part is the output
        for suffix in (".bin", ".idx"):
            os.replace(specs[0].out_prefix + suffix, final + suffix)
    else:
        # Cost: one copy of every part. add_index runs a full gc.collect() per part (~0.3 s each
        # with torch and Megatron loaded); freezing the existing heap first makes those cheap.
        import gc

        gc.freeze()
        try:
            builder = IndexedDatasetBuilder(final + ".tmp.bin", dtype=dtype)
            for spec in specs:
                builder.add_index(spec.out_prefix)
            builder.finalize(final + ".tmp.idx")
        finally:
            gc.unfreeze()
        for suffix in (".bin", ".idx"):
            os.replace(final + ".tmp" + suffix, final + suffix)
    _remove_parts(specs)
    summary = {"output_prefix": final, "documents": total.docs, "tokens": total.tokens, "input_bytes": total.bytes,
               "empty": total.empty, "corrupt": total.corrupt, "corrupt_examples": total.examples,
               "workers": workers, "parts": n, "resumed_parts": n - len(todo), "seconds": time.perf_counter() - t0,
               "tokenizer": tokenizer.unique_identifiers["class"], "vocab_size": tokenizer.vocab_size,
               "dtype": dtype.__name__}
    _write_manifest(final + ".json", {"identity": ident, "summary": summary})
    return summary


def _drain(queue, progress: Progress, timeout: float) -> None:
    import queue as q

    try:
        item = queue.get(timeout=timeout) if timeout else queue.get_nowait()
        while True:
            progress.update(*item)
            item = queue.get_nowait()
    except q.Empty:
        pass


def _remove_parts(specs: List[PartSpec]) -> None:
    for spec in specs:
        for suffix in (".bin", ".idx", ".json"):
            if os.path.exists(spec.out_prefix + suffix):
                os.remove(spec.out_prefix + suffix)
