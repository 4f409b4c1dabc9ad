"""Writing a safetensors file one tensor at a time.

``safetensors.torch.save_file`` needs every tensor in memory at once; the format itself does not:
an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and byte
range, then the bytes. The header depends only on names, shapes and dtypes, so it is written
first and each tensor is written into its range when it arrives (in any order), then released.
The layout is the one ``save_file`` produces - same ordering (dtype, then name), same header
padding - so the file is byte-for-byte what ``save_file`` would write for the same tensors
(``tests/test_hf_streaming.py`` checks it).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from plugtron.providers.hf.errors import ConversionError

# safetensors' dtype names, in the order of its Rust ``Dtype`` enum (save_file sorts by it, largest first)
_DTYPES = (
    (torch.bool, "BOOL"), (torch.uint8, "U8"), (torch.int8, "I8"), (torch.float8_e5m2, "F8_E5M2"),
    (torch.float8_e4m3fn, "F8_E4M3"), (torch.int16, "I16"), (torch.float16, "F16"), (torch.bfloat16, "BF16"),
    (torch.int32, "I32"), (torch.float32, "F32"), (torch.float64, "F64"), (torch.int64, "I64"),
)
_NAME = dict(_DTYPES)
_RANK = {dt: i for i, (dt, _) in enumerate(_DTYPES)}


class SafetensorsWriter:
    """``specs``: name -> (shape, dtype) of every tensor the file will hold. Use as a context
    manager; ``write(name, tensor)`` each of them once; leaving the block checks all were written
    (a file with a missing tensor is removed, never left looking complete)."""

    def __init__(self, path: Path, specs: Dict[str, Tuple[Tuple[int, ...], torch.dtype]],
                 metadata: Optional[Dict[str, str]] = None):
        self.path = Path(path)
        self.specs = specs
        order = sorted(specs, key=lambda n: (-_RANK[specs[n][1]], n))
        header: Dict[str, object] = {"__metadata__": metadata} if metadata else {}
        self.ranges: Dict[str, Tuple[int, int]] = {}
        offset = 0
        for name in order:
            shape, dtype = specs[name]
            if dtype not in _NAME:
                raise ConversionError(f"safetensors cannot hold tensor '{name}' of dtype {dtype}")
            n = dtype.itemsize
            for d in shape:
                n *= d
            self.ranges[name] = (offset, offset + n)
            header[name] = {"dtype": _NAME[dtype], "shape": list(shape), "data_offsets": [offset, offset + n]}
            offset += n
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # save_file pads the header to a multiple of 8 bytes
        self._prefix = struct.pack("<Q", len(text)) + text
        self._size = len(self._prefix) + offset
        self._written = set()
        self._rows: Dict[str, set] = {}  # stacked tensors written row by row: the rows so far
        self._file = None

    def __enter__(self) -> "SafetensorsWriter":
        self._file = open(self.path, "wb")
        self._file.write(self._prefix)
        self._file.truncate(self._size)
        return self

    def write(self, name: str, tensor: torch.Tensor, row: Optional[int] = None) -> None:
        """The whole tensor ``name``, or (``row`` given) row ``row`` of it: ``tensor`` is then
        ``name[row]``, and ``name`` counts as written once all its rows are."""
        shape, dtype = self.specs[name]
        expected = tuple(shape) if row is None else tuple(shape[1:])
        if tuple(tensor.shape) != expected or tensor.dtype != dtype:
            what = f"tensor '{name}'" if row is None else f"row {row} of tensor '{name}'"
            raise ConversionError(f"{what}: got {tuple(tensor.shape)} {tensor.dtype}, expected {expected} {dtype}")
        start, end = self.ranges[name]
        if row is not None:
            if not shape or not 0 <= row < shape[0]:
                raise ConversionError(f"tensor '{name}' of shape {tuple(shape)} has no row {row}")
            start += row * ((end - start) // shape[0])
        self._file.seek(len(self._prefix) + start)
        if tensor.numel():
            # raw bytes without a copy (numpy has no bfloat16: view the bytes as uint8 first)
            self._file.write(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
        if row is None:
            self._written.add(name)
            return
        rows = self._rows.setdefault(name, set())
        rows.add(row)
        if len(rows) == shape[0]:
            self._written.add(name)

    def __exit__(self, exc_type, exc, tb) -> None:
        missing = sorted(set(self.specs) - self._written)
        try:
            if exc_type is None and not missing:
                self._file.flush()
                os.fsync(self._file.fileno())
        finally:
            self._file.close()
        if exc_type is not None or missing:
            self.path.unlink(missing_ok=True)
        if exc_type is None and missing:
            raise ConversionError(f"{self.path}: tensor(s) {', '.join(missing[:5])} never written")
