"""Reading a checkpoint can never run code: every pickle in it is read through an allow-list.

- ``.metadata`` (torch.distributed.checkpoint's index of a Megatron checkpoint) is a plain pickle
  that torch's ``FileSystemReader.read_metadata`` reads with ``pickle.load``. torch's weights-only
  unpickler cannot read it (it knows pickle protocol 2 only; ``.metadata`` is protocol 4/5), so
  ``MetadataUnpickler`` is a ``pickle.Unpickler`` whose ``find_class`` resolves only the metadata
  dataclasses of ``torch.distributed.checkpoint`` (``metadata``, ``planner``, ``filesystem``, ``storage``) and
  a few torch values (``torch.Size``, dtypes, the layout lookup). Constructing or calling those
  runs no code beyond assigning fields. Every other global is refused, naming the file.
- Everything ``torch.load`` reads during a load (``common.pt``, the object entries inside
  ``.distcp`` files) runs under ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1``.

``safe_loads()`` installs both for the duration of a load (process-wide; restored afterwards).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import inspect
import os
import pickle
from typing import Any, Dict, Tuple

import torch

from plugtron.errors import CheckpointError

_DCP_MODULES = ("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.planner",
                "torch.distributed.checkpoint.filesystem", "torch.distributed.checkpoint.storage")


def _allowed() -> Dict[Tuple[str, str], Any]:
    """(module, name) -> object: the dataclasses and enums of the dcp modules whose objects a
    ``.metadata`` holds (derived, so a torch upgrade adding a field class is covered; none of them
    does more than assign fields when built), torch.Size, dtypes."""
    import importlib

    out: Dict[Tuple[str, str], Any] = {}
    for modname in _DCP_MODULES:
        mod = importlib.import_module(modname)
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and obj.__module__ == modname and (
                    dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum)):
                out[(modname, name)] = obj
    out[("torch", "Size")] = torch.Size
    out[("torch.serialization", "_get_layout")] = torch.serialization._get_layout  # a dict lookup by name
    for name, obj in vars(torch).items():
        if isinstance(obj, torch.dtype):
            out[("torch", name)] = obj
    return out


_ALLOWED: Dict[Tuple[str, str], Any] = {}


class MetadataUnpickler(pickle.Unpickler):
    """Resolves only the globals of ``_allowed()``; ``path`` names the file in the error."""

    def __init__(self, file, path: str):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if not _ALLOWED:
            _ALLOWED.update(_allowed())
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self.path}: refused to unpickle {module}.{name} (not a torch.distributed.checkpoint metadata "
                "class); the file is not a checkpoint index plugtron can read safely") from None

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self.path}: refused a persistent id in the checkpoint index")


def load_metadata(path: str) -> Any:
    """Unpickle a ``.metadata`` file through ``MetadataUnpickler``; any failure names ``path``."""
    try:
        with open(path, "rb") as f:
            return MetadataUnpickler(f, path).load()
    except CheckpointError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # truncated, garbage, recursion: all mean "not a checkpoint index"
        raise CheckpointError(f"{path}: unreadable checkpoint index ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None


def _read_metadata(self, *args: Any, **kwargs: Any):
    """``FileSystemReader.read_metadata`` with ``load_metadata`` in place of ``pickle.load``;
    the rest is what torch does after reading (a fresh load id in the storage meta)."""
    from torch.distributed.checkpoint.metadata import StorageMeta

    metadata = load_metadata(str(self._get_metadata_path(kwargs.get("rank"))))
    if getattr(metadata, "storage_meta", None) is None:
        metadata.storage_meta = StorageMeta()
    metadata.storage_meta.load_id = self.load_id
    return metadata


@contextlib.contextmanager
def safe_loads():
    """For the duration: ``.metadata`` through ``MetadataUnpickler`` (every reader Megatron uses
    subclasses torch's ``FileSystemReader``), every ``torch.load`` weights-only."""
    from torch.distributed.checkpoint.filesystem import FileSystemReader

    key = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    previous_env, previous_reader = os.environ.get(key), FileSystemReader.read_metadata
    os.environ[key] = "1"
    FileSystemReader.read_metadata = _read_metadata
    try:
        yield
    finally:
        FileSystemReader.read_metadata = previous_reader
        if previous_env is None:
            del os.environ[key]
        else:
            os.environ[key] = previous_env
