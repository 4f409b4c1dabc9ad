"""Reading and writing Hugging Face model directories: ``config.json`` plus safetensors, sharded
(``model.safetensors.index.json``) or not. Local only: a hub id is resolved from the local
Hugging Face cache if it is there, never downloaded."""

from __future__ import annotations

import json
import os
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


def read_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{path}: cannot read ({exc})") from None


class SafetensorsReader:
    """Lazy access to every tensor of a model directory, wherever its shard is."""

    def __init__(self, model_dir: Path):
        require_safetensors()
        self.dir = model_dir
        self.where: Dict[str, Path] = {}
        index = model_dir / INDEX
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError) as exc:
                raise ConversionError(f"{index}: not a safetensors index ({exc})") from None
            for name, shard in weight_map.items():
                self.where[name] = model_dir / shard
        else:
            files = sorted(model_dir.glob("*.safetensors"))
            if not files:
                bins = sorted(p.name for p in model_dir.glob("*.bin"))
                extra = f" (found {', '.join(bins)}: re-save with safe_serialization=True)" if bins else ""
                raise ConversionError(f"{model_dir}: no *.safetensors weights{extra}")
            from safetensors import safe_open

            for f in files:
                with safe_open(str(f), framework="pt") as h:
                    for name in h.keys():
                        self.where[name] = f
        missing = sorted({str(f) for f in self.where.values() if not f.is_file()})
        if missing:
            raise ConversionError(f"{model_dir}: shard(s) named in {INDEX} are missing: {', '.join(missing)}")
        self._handles: Dict[Path, object] = {}

    def keys(self) -> Iterable[str]:
        return self.where.keys()

    def get(self, name: str) -> torch.Tensor:
        from safetensors import safe_open

        f = self.where[name]
        if f not in self._handles:
            self._handles[f] = safe_open(str(f), framework="pt")
        return self._handles[f].get_tensor(name)


def write_model_dir(out_dir: Path, tensors: Dict[str, torch.Tensor], config: dict,
                    max_shard_bytes: Optional[int] = None) -> List[Path]:
    """config.json + model.safetensors, or numbered shards and an index past ``max_shard_bytes``."""
    require_safetensors()
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shards: List[List[Tuple[str, torch.Tensor]]] = [[]]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if max_shard_bytes and shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, t.contiguous()))
        size += nbytes
    meta = {"format": "pt"}
    if len(shards) == 1:
        path = out_dir / SINGLE
        save_file(dict(shards[0]), str(path), metadata=meta)
        return [path]
    paths, weight_map, total = [], {}, 0
    for i, shard in enumerate(shards, 1):
        path = out_dir / f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(dict(shard), str(path), metadata=meta)
        paths.append(path)
        for name, t in shard:
            weight_map[name] = path.name
            total += t.numel() * t.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return paths
