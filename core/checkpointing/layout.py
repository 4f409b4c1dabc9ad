"""The on-disk layout of a checkpoint directory, and the file operations that keep it consistent.

    <save>/
      latest_checkpointed_iteration.txt   "100"            (replaced atomically, after the publish)
      latest_train_state.pt               train state of the newest checkpoint
      iter_0000100/                       one complete checkpoint (exists only once complete)
        .metadata  __*_*.distcp  common.pt  metadata.json    Megatron dist checkpoint (torch_dist)
        mp_rank_00/model_optim_rng.pt                        (instead, ckpt_format=torch)
        rng/rank_00000.pt ...             each rank's RNG states
        plugins/<name>/rank_00000.pt ...  each plugin's state per rank (on_save results)
        train_state.pt                    iteration, consumed samples, skipped iterations, FLOPs
        run_config.yaml                   the full resolved config
        manifest.json                     size and CRC32 of every file above (written last)
      iter_0000100.staging/               a save in progress (never loaded; removed on the next save)
      iter_0000050.deleting/              retention in progress (never loaded; removed on the next save)

Why it is safe to kill at any moment: a checkpoint is written under ``.staging``, fsynced, and only
then renamed to ``iter_XXXXXXX`` (an atomic rename on POSIX); the tracker file is replaced with
``os.replace`` after that. Retention renames a victim to ``.deleting`` before removing it, so a
half-deleted directory never carries a loadable name. Torch-free on purpose (``plugtron`` CLI paths).
"""

from __future__ import annotations

import os
import re
import shutil
from typing import List, Optional

from plugtron.checkpointing.manifest import MANIFEST, verify, write_manifest  # noqa: F401 (part of this API)
from plugtron.errors import CheckpointError

TRACKER = "latest_checkpointed_iteration.txt"
LATEST_TRAIN_STATE = "latest_train_state.pt"
TRAIN_STATE = "train_state.pt"
RUN_CONFIG = "run_config.yaml"
STAGING = ".staging"
DELETING = ".deleting"
ITER_RE = re.compile(r"^iter_(\d{7})$")
_TRACKER_RE = re.compile(r"[0-9]{1,12}")
_TRACKER_MAX = 64  # bytes; a tracker is a few digits and a newline


def iter_name(iteration: int) -> str:
    return f"iter_{iteration:07d}"


def iter_path(root: str, iteration: int) -> str:
    return os.path.join(root, iter_name(iteration))


def staging_path(root: str, iteration: int) -> str:
    return iter_path(root, iteration) + STAGING


# ---- durability ---------------------------------------------------------------------------------
def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str) -> None:
    """fsync every file and directory under ``root`` (a rename publishes only what is on disk)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            _fsync_path(os.path.join(dirpath, name))
        _fsync_path(dirpath)


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees the old content or the new, never a mix."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_path(os.path.dirname(os.path.abspath(path)))


# ---- publish, tracker, discovery, retention ---------------------------------------------------------
def publish(staging: str, final: str) -> None:
    """Make a fully written checkpoint visible under its final name (atomic rename)."""
    fsync_tree(staging)
    if os.path.exists(final):  # the same iteration saved again (e.g. a resumed run's last save)
        doomed = final + DELETING
        shutil.rmtree(doomed, ignore_errors=True)
        os.rename(final, doomed)
        os.rename(staging, final)
        shutil.rmtree(doomed, ignore_errors=True)
    else:
        os.rename(staging, final)
    _fsync_path(os.path.dirname(os.path.abspath(final)))


def write_tracker(root: str, iteration: int) -> None:
    atomic_write(os.path.join(root, TRACKER), f"{iteration}\n".encode())


def _tracker_text(path: str) -> str:
    with open(path, "rb") as f:
        raw = f.read(_TRACKER_MAX + 1)
    return raw.decode("utf-8", errors="replace").strip() if len(raw) <= _TRACKER_MAX else raw[:40].decode(errors="replace") + "..."


def read_tracker(root: str) -> Optional[int]:
    path = os.path.join(root, TRACKER)
    if not os.path.lexists(path):
        return None
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: expected a file holding an iteration number, found something else")
    text = _tracker_text(path)
    # ASCII digits only: str.isdigit() accepts '²', which int() then rejects
    if not _TRACKER_RE.fullmatch(text):
        raise CheckpointError(f"{path}: expected an iteration number, got {text[:40]!r}")
    return int(text)


def complete_iterations(root: str) -> List[int]:
    """Iterations with a published checkpoint directory under ``root``, ascending."""
    if not os.path.isdir(root):
        return []
    return sorted(int(m.group(1)) for n in os.listdir(root) if (m := ITER_RE.match(n)) and os.path.isdir(os.path.join(root, n)))


def latest_iteration(root: str) -> Optional[int]:
    """The newest complete checkpoint. A published directory newer than the tracker is complete by
    construction (it was renamed only once written): a kill between rename and tracker update."""
    tracked = read_tracker(root)
    done = complete_iterations(root)
    if tracked is not None and tracked not in done:
        raise CheckpointError(
            f"{os.path.join(root, TRACKER)}: names iteration {tracked}, but {iter_path(root, tracked)} does not exist"
        )
    return max(done) if done else None


def clean_leftovers(root: str) -> List[str]:
    """Remove interrupted saves (``.staging``) and deletions (``.deleting``); returns what went."""
    gone = []
    if os.path.isdir(root):
        for n in os.listdir(root):
            if n.endswith((STAGING, DELETING)) or ".tmp" in n:
                p = os.path.join(root, n)
                shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.remove(p)
                gone.append(n)
    return gone


def apply_retention(root: str, keep: int) -> List[int]:
    """Delete all but the ``keep`` newest complete checkpoints (``keep <= 0``: keep all). Runs only
    after the newest is published and tracked, so the newest complete one always survives."""
    if keep <= 0:
        return []
    victims = complete_iterations(root)[:-keep]
    for it in victims:
        path = iter_path(root, it)
        os.rename(path, path + DELETING)  # from here on it can never be loaded
        shutil.rmtree(path + DELETING, ignore_errors=True)
    return victims


def resolve_checkpoint_dir(path: str, key: str) -> str:
    """``path`` is a save root (tracker or ``iter_*`` inside) or an ``iter_*`` / ``release``
    directory itself. Returns the directory holding the checkpoint files."""
    if not os.path.exists(path):
        raise CheckpointError(f"{key}: {path} does not exist{hf_hint(path)}")
    if not os.path.isdir(path):
        raise CheckpointError(f"{key}: {path} is a file; expected a checkpoint directory")
    if is_checkpoint_dir(path):
        return path
    tracker = os.path.join(path, TRACKER)
    if os.path.isfile(tracker) and _tracker_text(tracker) == "release":
        return os.path.join(path, "release")
    it = latest_iteration(path)
    if it is None:
        raise CheckpointError(
            f"{key}: {path} holds no checkpoint (expected {TRACKER} and iter_XXXXXXX/ inside, "
            f"or a directory with a Megatron distributed checkpoint's .metadata){hf_hint(path)}"
        )
    return iter_path(path, it)


def hf_hint(path: str) -> str:
    """What to do when a checkpoint path is a Hugging Face model (a directory with config.json, or
    an ``hf://`` name, NeMo 2.0's import syntax): convert it first."""
    text = str(path)
    if text.startswith("hf://"):
        return (f"; {text!r} is a Hugging Face model name: plugtron reads local checkpoints only. Convert a local "
                f"copy first (plugtron convert import-hf HF_DIR OUT_DIR) and name OUT_DIR here")
    if os.path.isfile(os.path.join(text, "config.json")):
        return (f"; it is a Hugging Face model directory: convert it first (plugtron convert import-hf {text} "
                "OUT_DIR) and name OUT_DIR here")
    return ""


def is_checkpoint_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, ".metadata")) or os.path.isfile(
        os.path.join(path, "mp_rank_00", "model_optim_rng.pt")
    )
