"""Reading and writing Hugging Face model directories: ``config.json`` plus safetensors, sharded
(``model.safetensors.index.json``) or not. Local only: a hub id is resolved from the local
Hugging Face cache if it is there, never downloaded."""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import struct
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import torch

from plugtron.providers.hf.errors import ConversionError, require_safetensors

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def _hub_cache_dirs() -> List[Path]:
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    dirs.append(home / "hub")
    return dirs


def resolve_local(path_or_id: str) -> Path:
    """A local directory holding config.json: the path itself, or a hub id's cached snapshot."""
    p = Path(path_or_id).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ConversionError(f"{p}: not a Hugging Face model directory (no config.json)")
        return p
    if p.exists():
        raise ConversionError(f"{p}: expected a Hugging Face model directory, got a file")
    parts = str(path_or_id).split("/")
    if len(parts) == 2 and all(parts) and not str(path_or_id).startswith((".", "/", "~")):
        folder = "models--" + "--".join(parts)
        for cache in _hub_cache_dirs():
            snaps = sorted((cache / folder / "snapshots").glob("*/config.json"), key=lambda f: f.stat().st_mtime)
            if snaps:
                return snaps[-1].parent
        raise ConversionError(
            f"{path_or_id}: looks like a Hugging Face hub id, but there is no local copy (plugtron never "
            f"downloads). Download it first, e.g. `huggingface-cli download {path_or_id} --local-dir DIR`, "
            "and pass DIR."
        )
    raise ConversionError(f"{p}: no such directory")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError includes UnicodeDecodeError
        raise ConversionError(f"{path}: cannot read ({type(exc).__name__}: {str(exc)[:200]})") from None


def read_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    cfg = _read_json(path)
    if not isinstance(cfg, dict):
        raise ConversionError(f"{path}: expected a JSON object of model settings, got a {type(cfg).__name__}")
    return cfg


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _open_safetensors(path: Path):
    """``safe_open`` that names the file when it is not a safetensors file (garbage, truncated)."""
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework="pt")
    except Exception as exc:  # SafetensorError and OSError: the header or the file is unreadable
        raise ConversionError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None


def _weight_map(index: Path, model_dir: Path) -> Dict[str, Path]:
    doc = _read_json(index)
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) and v for v in weight_map.values()):
        raise ConversionError(f"{index}: not a safetensors index (expected {{\"weight_map\": {{tensor name: "
                              "shard file name}}})")
    return {name: model_dir / shard for name, shard in weight_map.items()}


# safetensors' dtype names -> torch's (little-endian on disk, as on every machine torch supports here)
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}


class SafetensorsReader:
    """Lazy access to every tensor of a model directory, wherever its shard is."""

    def __init__(self, model_dir: Path):
        require_safetensors()
        self.dir = model_dir
        self.where: Dict[str, Path] = {}
        index = model_dir / INDEX
        if index.is_file():
            self.where = _weight_map(index, model_dir)
        else:
            files = sorted(model_dir.glob("*.safetensors"))
            if not files:
                bins = sorted(p.name for p in model_dir.glob("*.bin"))
                extra = f" (found {', '.join(bins)}: re-save with safe_serialization=True)" if bins else ""
                raise ConversionError(f"{model_dir}: no *.safetensors weights{extra}")
            for f in files:
                with _open_safetensors(f) as h:
                    for name in h.keys():
                        self.where[name] = f
        missing = sorted({str(f) for f in self.where.values() if not f.is_file()})
        if missing:
            raise ConversionError(f"{model_dir}: shard(s) named in {INDEX} are missing: {', '.join(missing)}")
        self._handles: Dict[Path, object] = {}
        self._headers: Dict[Path, Dict[str, tuple]] = {}

    def keys(self) -> Iterable[str]:
        return self.where.keys()

    def _handle(self, name: str):
        f = self.where[name]
        if f not in self._handles:
            self._handles[f] = _open_safetensors(f)
        return f, self._handles[f]

    def shape(self, name: str) -> Tuple[int, ...]:
        """From the header: no data is read."""
        f, h = self._handle(name)
        try:
            return tuple(h.get_slice(name).get_shape())
        except Exception as exc:  # a name the index puts in the wrong shard
            raise ConversionError(f"{f}: cannot read tensor '{name}' ({_first_line(exc)})") from None

    def get(self, name: str) -> torch.Tensor:
        """A copy of the tensor in memory of its own, read with plain reads: safetensors' own
        ``get_tensor`` returns a tensor over its memory map, whose pages stay resident as long as the
        tensor lives - and torch's writer holds the last tensor of each key until the checkpoint
        file is closed, so a streamed import kept the whole embedding resident to the end (measured:
        537 MiB above the start for a 2.3 GiB import whose largest tensor is 226 MiB)."""
        f = self.where[name]
        spot = self._spots(f).get(name)
        if spot is None:  # a dtype without a torch twin here, or a name the index puts in the wrong shard
            return self._get_mapped(f, name)
        dtype, shape, start, nbytes = spot
        out = torch.empty(shape, dtype=dtype)
        if nbytes:
            # a raw view of the storage: .numpy() would mark it non-resizable, and the streamed import
            # frees each tensor's memory by resizing its storage to 0 once it is written
            buf = memoryview((ctypes.c_char * nbytes).from_address(out.data_ptr())).cast("B")
            with open(f, "rb", buffering=0) as fh:
                fh.seek(start)
                done = 0
                while done < nbytes:  # one read() returns at most ~2 GiB
                    got = fh.readinto(buf[done:])
                    if not got:
                        raise ConversionError(f"{f}: truncated: tensor '{name}' ends past the end of the file")
                    done += got
        return out

    def _spots(self, f: Path) -> Dict[str, tuple]:
        """name -> (dtype, shape, absolute offset, bytes) from the file's header, once per file (the
        header is checked by safetensors itself first)."""
        if f not in self._headers:
            with _open_safetensors(f):
                pass
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n))
            spots = {}
            for key, info in header.items():
                dtype = _SAFETENSORS_DTYPES.get(info.get("dtype")) if isinstance(info, dict) else None
                if dtype is None or key == "__metadata__":
                    continue
                begin, end = info["data_offsets"]
                nbytes = math.prod(info["shape"]) * torch.empty((), dtype=dtype).element_size()
                if end - begin == nbytes:
                    spots[key] = (dtype, tuple(info["shape"]), 8 + n + begin, nbytes)
            self._headers[f] = spots
        return self._headers[f]

    def _get_mapped(self, f: Path, name: str) -> torch.Tensor:
        try:
            with _open_safetensors(f) as h:
                return h.get_tensor(name)
        except ConversionError:
            raise
        except Exception as exc:  # a name the index puts in the wrong shard, or a corrupt tensor
            raise ConversionError(f"{f}: cannot read tensor '{name}' ({_first_line(exc)})") from None

    def get_row(self, name: str, row: int) -> torch.Tensor:
        """Row ``row`` of a tensor stacking one entry per expert: only that row's bytes are read."""
        f = self.where[name]
        try:
            with _open_safetensors(f) as h:
                return h.get_slice(name)[row : row + 1][0].clone()
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(f"{f}: cannot read row {row} of tensor '{name}' ({_first_line(exc)})") from None


def _holds_plugtron_checkpoint(path: Path) -> bool:
    from plugtron.checkpointing import layout

    return (path / layout.TRACKER).exists() or bool(layout.complete_iterations(str(path)))


def check_export_dir(out_dir: Path, overwrite: bool) -> None:
    """An export writes into a new or empty directory; into a non-empty one only with ``overwrite``,
    and never into a directory holding a plugtron checkpoint. Checked before the model is loaded."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConversionError(f"{out_dir}: is a file; expected a directory for config.json and the safetensors")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if _holds_plugtron_checkpoint(out_dir):
        raise ConversionError(f"{out_dir}: holds a plugtron checkpoint; export-hf never writes into one, even "
                              "with --overwrite: choose another directory")
    if not overwrite:
        raise ConversionError(f"{out_dir}: not empty; choose a new directory, or pass --overwrite (Python: "
                              "overwrite=True) to replace its config.json and safetensors weights (other files, "
                              "such as a tokenizer, are kept)")


def remove_weights(out_dir: Path) -> None:
    """Before an export with ``overwrite``: a previous export's shards and index would otherwise
    be mixed with the new ones."""
    for old in [*out_dir.glob("*.safetensors"), out_dir / INDEX]:
        if old.is_file():
            old.unlink()


def write_model_dir(out_dir: Path, tensors: Dict[str, torch.Tensor], config: dict,
                    max_shard_bytes: Optional[int] = None) -> List[Path]:
    """config.json + model.safetensors, or numbered shards and an index past ``max_shard_bytes``."""
    specs = {name: (tuple(t.shape), t.dtype) for name, t in tensors.items()}
    return write_model_dir_streaming(out_dir, specs, tensors.items(), config, max_shard_bytes)


def _shards(specs: Dict[str, Tuple[Tuple[int, ...], torch.dtype]], max_shard_bytes: Optional[int]) -> List[List[str]]:
    """Tensor names per shard, in ``specs`` order: a new shard when the next tensor would pass the size."""
    shards: List[List[str]] = [[]]
    size = 0
    for name, (shape, dtype) in specs.items():
        nbytes = dtype.itemsize * math.prod(shape)
        if max_shard_bytes and shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def write_model_dir_streaming(out_dir: Path, specs: Dict[str, Tuple[Tuple[int, ...], torch.dtype]],
                              tensors: Iterable[Tuple[str, torch.Tensor]], config: dict,
                              max_shard_bytes: Optional[int] = None) -> List[Path]:
    """``write_model_dir`` from ``(name, tensor)`` pairs produced one at a time (any order; each of
    ``specs``, name -> (shape, dtype), exactly once): each is written into its place and dropped.
    ``(name, tensor, row)`` is row ``row`` of a stacked tensor (``weights.Rule.rows``): written into
    its place too, so the stacked tensor is never in memory whole."""
    from plugtron.providers.hf.safetensors_out import SafetensorsWriter

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shards = _shards(specs, max_shard_bytes)
    if len(shards) == 1:
        paths = [out_dir / SINGLE]
    else:
        paths = [out_dir / f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)]
    shard_of = {name: i for i, names in enumerate(shards) for name in names}
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(SafetensorsWriter(path, {n: specs[n] for n in names}, {"format": "pt"}))
                   for path, names in zip(paths, shards)]
        for name, t, *row in tensors:
            if name not in shard_of:
                raise ConversionError(f"tensor '{name}' is not one of the model's tensors")
            writers[shard_of[name]].write(name, t, *row)
    if len(shards) > 1:
        total = sum(dtype.itemsize * math.prod(shape) for shape, dtype in specs.values())
        weight_map = {name: paths[shard_of[name]].name for name in specs}
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out_dir / INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return paths
