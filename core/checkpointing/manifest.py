"""``manifest.json``: size and CRC32 of every file of a checkpoint directory, written last.

Loading checks the checkpoint against it *before anything in it is read*: every file on disk must
be listed, every listed file must be on disk with its size, and (the expensive part: every byte is
read once) its CRC32 must match. Files are memory-mapped in 8 MiB windows (no copy out of the page
cache) and checksummed with zlib-ng's ``crc32`` (the same CRC32 as ``zlib``, ~3-5x faster: ~10 GB/s
here, faster than a plain read of the same bytes), the windows spread over threads and combined with
``crc32_combine``; with several processes the files are also dealt over ranks. Without the
``zlib-ng`` package, plain ``zlib`` computes the same values, file by file. A matching manifest proves integrity, not
origin: whoever can write the checkpoint can rewrite its manifest, which is why pickles inside are
still read with restricted unpicklers (``safe_pickle``). Torch-free.
"""

from __future__ import annotations

import json
import mmap
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

try:  # same polynomial and values as zlib.crc32, SIMD-accelerated; a dependency, but optional at run time
    from zlib_ng import zlib_ng as _zng
except ImportError:  # pragma: no cover - exercised by test_manifest's fallback test through monkeypatch
    _zng = None

from plugtron.errors import CheckpointError

MANIFEST = "manifest.json"
FORMAT = 1
Entries = Dict[str, Tuple[int, int]]  # relative path -> (size, crc32)


WINDOW = 8 << 20  # bytes mapped at a time: bounds the resident pages a CRC pass adds (x threads)


def _crc_window(path: str, offset: int, length: int) -> int:
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), length, access=mmap.ACCESS_READ, offset=offset) as m:
            return _zng.crc32(m)
    except (OSError, ValueError) as exc:  # ValueError: the file shrank below the size just checked
        raise CheckpointError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None


def _crc_by_reading(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def crcs(paths: Sequence[str], threads: Optional[int] = None) -> List[int]:
    """CRC32 of each of ``paths`` (every byte read once), windows of all files spread over threads."""
    if not paths:
        return []
    workers = max(1, min(threads or os.cpu_count() or 1, 8))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plugtron-crc") as pool:
        if _zng is None:
            return list(pool.map(_crc_by_reading, paths))
        jobs = [(p, off, min(WINDOW, size - off)) for p in paths
                for size in (os.path.getsize(p),) for off in range(0, size, WINDOW)]
        parts = iter(zip(jobs, pool.map(lambda job: _crc_window(*job), jobs)))
        out = []
        for p in paths:  # jobs are in path order, windows in file order: fold each file's windows
            crc, left = 0, os.path.getsize(p)
            while left > 0:
                (_, _, length), part = next(parts)
                crc, left = _zng.crc32_combine(crc, part, length), left - length
            out.append(crc)
        return out


def crc32(path: str) -> int:
    return crcs([path])[0]


def files_of(root: str) -> List[str]:
    """Every file under ``root`` but the manifest, relative, sorted."""
    out = []
    for dirpath, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, n), root) for n in files]
    return sorted(p for p in out if p != MANIFEST)


def write_manifest(ckpt_dir: str) -> None:
    """Size and CRC32 of every file (reads each file once; they are still in the page cache)."""
    names = files_of(ckpt_dir)
    sums = crcs([os.path.join(ckpt_dir, rel) for rel in names])
    entries = {rel: {"size": os.path.getsize(os.path.join(ckpt_dir, rel)), "crc32": crc}
               for rel, crc in zip(names, sums)}
    with open(os.path.join(ckpt_dir, MANIFEST), "w") as f:
        json.dump({"format": FORMAT, "files": entries}, f, indent=1, sort_keys=True)


def _is_count(value, limit: int) -> bool:
    return type(value) is int and 0 <= value < limit  # noqa: E721 (bool is not a size)


def read_manifest(ckpt_dir: str) -> Entries:
    """The manifest's entries; a missing or malformed manifest is a ``CheckpointError`` naming it."""
    path = os.path.join(ckpt_dir, MANIFEST)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: missing; {ckpt_dir} is not a complete plugtron checkpoint")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: unreadable manifest ({type(exc).__name__}: {str(exc)[:200]}); "
                              "the checkpoint is corrupt") from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path}: malformed manifest (expected {{\"format\": {FORMAT}, \"files\": "
                              "{path: {\"size\": int, \"crc32\": int}}}); the checkpoint is corrupt")
    entries: Entries = {}
    for rel, want in files.items():
        size, crc = (want.get("size"), want.get("crc32")) if isinstance(want, dict) else (None, None)
        if not (_is_count(size, 1 << 62) and _is_count(crc, 1 << 32)):
            raise CheckpointError(f"{path}: malformed entry {rel[:200]!r}: expected {{\"size\": int, \"crc32\": int}}, "
                                  f"got {str(want)[:100]}")
        entries[rel] = (size, crc)
    return entries


def check_listing(ckpt_dir: str, entries: Entries) -> None:
    """Every listed file present with its size, every present file listed (cheap: stat only)."""
    on_disk = set(files_of(ckpt_dir))
    unlisted = sorted(on_disk - set(entries))
    if unlisted:
        raise CheckpointError(f"{os.path.join(ckpt_dir, unlisted[0])}: not listed in {MANIFEST}; the checkpoint "
                              "was changed after it was written")
    for rel, (size, _) in sorted(entries.items()):
        full = os.path.join(ckpt_dir, rel)
        if rel not in on_disk:  # also catches '../x' or absolute names: they are never in the walk
            raise CheckpointError(f"{full}: missing from the checkpoint (listed in {MANIFEST})")
        actual = os.path.getsize(full)
        if actual != size:
            raise CheckpointError(f"{full}: {actual} bytes, expected {size}; the file is truncated or corrupt")


def my_share(entries: Entries, rank: int, world: int) -> List[str]:
    """The files whose CRC this rank checks: largest first, dealt round-robin over the ranks."""
    by_size = sorted(entries, key=lambda rel: (-entries[rel][0], rel))
    return sorted(by_size[rank::world])


def check_crcs(ckpt_dir: str, entries: Entries, names: Sequence[str], threads: Optional[int] = None) -> None:
    """CRC32 of ``names`` (reads every byte once), several files at a time; names the first bad one."""
    got_all = crcs([os.path.join(ckpt_dir, rel) for rel in names], threads)
    for rel, got in zip(names, got_all):
        if got != entries[rel][1]:
            raise CheckpointError(f"{os.path.join(ckpt_dir, rel)}: CRC32 mismatch; the file is corrupt")


def verify(ckpt_dir: str, check_crc: bool = True) -> None:
    """Raise ``CheckpointError`` naming the first file that is missing, unlisted, truncated or
    corrupted (one process; ``loading.verify_collective`` spreads the CRC pass over ranks)."""
    entries = read_manifest(ckpt_dir)
    check_listing(ckpt_dir, entries)
    if check_crc:
        check_crcs(ckpt_dir, entries, sorted(entries))
