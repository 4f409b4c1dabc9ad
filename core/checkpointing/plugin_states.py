"""Plugin states in a checkpoint: ``plugins/<name>/rank_XXXXX.pt``, one file per plugin and rank.

One file per plugin keeps plugins apart: a state is checked when it is saved (a weights-only round
trip in memory, so a state that could never be loaded is refused before anything is published, with
the plugin, its package and the offending type named), a state of a plugin that is not enabled now
is skipped on resume with one line, and a state that fails to load names its plugin.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from typing import Any, Callable, Dict, Iterable, Optional

import torch

from plugtron import distributed
from plugtron.checkpointing.contents import load_weights_only
from plugtron.errors import PluginError

log = logging.getLogger("plugtron")
DIR = "plugins"
_PLAIN = (str, int, float, bool, bytes, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)


def path(ckpt_dir: str, name: str, rank: int) -> str:
    return os.path.join(ckpt_dir, DIR, name, f"rank_{rank:05d}.pt")


def _offender(obj: Any, where: str = "state") -> Optional[str]:
    """``state['x'][2]: set`` - the first value a weights-only load would refuse."""
    if isinstance(obj, _PLAIN):
        return None
    if isinstance(obj, (list, tuple)):
        return next((o for i, v in enumerate(obj) if (o := _offender(v, f"{where}[{i}]"))), None)
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                return f"a key of {where}: {type(k).__module__}.{type(k).__qualname__}"
            found = _offender(v, f"{where}[{k!r}]")
            if found:
                return found
        return None
    return f"{where}: {type(obj).__module__}.{type(obj).__qualname__}"


def serialize(name: str, state: Any, label: str) -> bytes:
    """The bytes to write for one plugin's state, after proving they load with ``weights_only=True``."""
    buf = io.BytesIO()
    # The allow-list first: what some torch versions' weights-only loader accepts (a set, on recent
    # ones) others refuse, and a checkpoint must load under every torch plugtron supports.
    what = _offender(state)
    try:
        if what is None:
            torch.save(state, buf)
            torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)
    except Exception as exc:
        what = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    if what is not None:
        raise PluginError(
            f"plugin {name!r} ({label}): on_save returned a state that a checkpoint cannot hold ({what}); "
            "return plain data - dict, list, tuple, str, int, float, bool, None - and tensors "
            "(e.g. a list instead of a set)") from None
    return buf.getvalue()


def save(hooks, state, staging: str, rank: int, label: Callable[[str], str]) -> None:
    """Call ``on_save``, check every state, then write them (collective). On any rank's failure,
    every rank raises and rank 0 removes ``staging``: nothing is published."""
    error, blobs = None, {}
    try:
        for name, value in hooks.on_save(state, staging).items():
            blobs[name] = serialize(name, value, label(name))
    except PluginError as exc:
        error = str(exc)
    if distributed.any_rank(error is not None)[0]:  # collective: one tiny all-reduce per save
        if rank == 0:
            shutil.rmtree(staging, ignore_errors=True)
        raise PluginError(error or "another rank's plugin state could not be saved (its message is in that rank's log)")
    for name, blob in blobs.items():  # a plugin without state pays nothing
        os.makedirs(os.path.dirname(path(staging, name, rank)), exist_ok=True)
        with open(path(staging, name, rank), "wb") as f:
            f.write(blob)


def load(ckpt_dir: str, rank: int, enabled: Iterable[str]) -> Dict[str, Any]:
    """This rank's state of every enabled plugin that has one. States of plugins not enabled now
    are skipped (one line on rank 0). Returns ``(states, error)``; the caller agrees on the error."""
    root = os.path.join(ckpt_dir, DIR)
    enabled = set(enabled)
    saved = sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n))) if os.path.isdir(root) else []
    skipped = [n for n in saved if n not in enabled]
    if skipped and rank == 0:
        log.info(f"checkpoint: skipping saved state of plugin(s) not enabled now: {', '.join(skipped)}")
    states: Dict[str, Any] = {}
    for name in saved:
        if name in enabled and os.path.isfile(path(ckpt_dir, name, rank)):
            try:
                states[name] = load_weights_only(path(ckpt_dir, name, rank))
            except Exception as exc:
                return states, f"state of plugin {name!r}: {exc}"
    return states, None
