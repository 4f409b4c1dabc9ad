"""What ``checkpoint.load``, ``checkpoint.save`` and ``checkpoint.pretrained_checkpoint`` may name,
checked before the first step so that a mistake costs seconds, never a run or a saved checkpoint.

Rules (also in the README, "Checkpoints"):

- ``load`` is a save directory (resume from its newest checkpoint) or one ``iter_XXXXXXX`` directory
  (resume from exactly that iteration). A path that does not exist, or an empty directory (leftovers
  of an interrupted save aside), means "nothing to resume yet": a fresh start, as Megatron does. A
  file, or a non-empty directory without a checkpoint, is an error: never a silent fresh start.
- ``save`` must be a directory this process can create and write in (checked by writing a probe file).
- A run writes into a ``save`` directory that already holds published checkpoints only if it
  resumes from that directory's newest one: a run's identity is its chain of checkpoints. A fresh
  run (no resume, or weights only via ``pretrained_checkpoint``), a run resumed from elsewhere, or
  one resumed from an older iteration would overwrite or mix with them, and is refused.

Torch-free; ``check_before_training`` is collective (every rank checks, all agree).
"""

from __future__ import annotations

import os
from typing import Optional

from plugtron import distributed
from plugtron.checkpointing import layout
from plugtron.errors import CheckpointError


def _is_leftover(name: str) -> bool:
    return name.endswith((layout.STAGING, layout.DELETING)) or ".tmp" in name


def resolve_load(path: str) -> Optional[str]:
    """The checkpoint directory ``checkpoint.load`` names, or ``None`` when there is nothing to
    resume yet (see the module's rules)."""
    key = "checkpoint.load"
    if not os.path.lexists(path):
        return None
    if not os.path.isdir(path):
        hint = (f"; set checkpoint.load to its directory {os.path.dirname(os.path.abspath(path))}"
                if os.path.basename(path) == layout.TRACKER else "")
        raise CheckpointError(f"{key}: {path} is a file{hint}; expected a save directory (holding {layout.TRACKER} "
                              "and iter_XXXXXXX/) or one iter_XXXXXXX directory")
    if layout.is_checkpoint_dir(path):
        return path
    if iteration_of(path) is not None:
        raise CheckpointError(f"{key}: {path} is not a complete checkpoint (no .metadata or "
                              "mp_rank_00/model_optim_rng.pt inside)")
    it = layout.latest_iteration(path)
    if it is not None:
        return layout.iter_path(path, it)
    other = sorted(n for n in os.listdir(path) if not _is_leftover(n))
    if other:
        shown = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
        raise CheckpointError(
            f"{key}: {path} holds no checkpoint (no {layout.TRACKER} or iter_XXXXXXX/ inside) but is not empty "
            f"({shown}); set checkpoint.load to a save directory or an iter_XXXXXXX directory, or unset it to "
            "start from scratch")
    return None


def iteration_of(ckpt_dir: str) -> Optional[int]:
    """The iteration of an ``iter_XXXXXXX`` directory, else ``None``."""
    m = layout.ITER_RE.match(os.path.basename(os.path.normpath(ckpt_dir)))
    return int(m.group(1)) if m else None


def check_writable(save: str, tag: str = "") -> None:
    """``save`` exists as a directory (created if needed) and a file can be written in it.
    ``tag`` keeps the probe names of several ranks apart."""
    key = "checkpoint.save"
    if os.path.lexists(save) and not os.path.isdir(save):
        raise CheckpointError(f"{key}: {save} is a file; expected a directory to save checkpoints in")
    try:
        os.makedirs(save, exist_ok=True)
    except OSError as exc:
        where = f" ({exc.filename} is in the way)" if exc.filename and exc.filename != save else ""
        raise CheckpointError(f"{key}: cannot create the directory {save}: {exc.strerror}{where}") from None
    probe = os.path.join(save, f".plugtron-write-probe{tag}.{os.getpid()}.tmp")  # '.tmp': a leftover is cleaned by the next save
    try:
        with open(probe, "wb") as f:
            f.write(b"probe")
        os.remove(probe)
    except OSError as exc:
        raise CheckpointError(f"{key}: cannot write in {save}: {exc.strerror}") from None


def check_save_target(save: str, resume_from: Optional[str]) -> None:
    """Refuse a ``save`` directory whose published checkpoints this run would overwrite or mix with."""
    key = "checkpoint.save"
    try:
        newest = layout.latest_iteration(save)
    except CheckpointError as exc:
        raise CheckpointError(f"{key}: {exc}") from None
    if newest is None:
        return
    newest_dir = layout.iter_path(save, newest)
    if resume_from is None:
        raise CheckpointError(
            f"{key}: {save} already holds checkpoints (newest: {newest_dir}) and this run does not resume from "
            f"them; it would overwrite them. Set checkpoint.load={save} to continue that run, or choose another "
            "checkpoint.save directory")
    same_root = os.path.realpath(os.path.dirname(os.path.normpath(resume_from))) == os.path.realpath(save)
    it = iteration_of(resume_from)
    if not same_root or it is None:
        raise CheckpointError(
            f"{key}: {save} already holds checkpoints (newest: {newest_dir}) of another run than the one resumed "
            f"from {resume_from}; saving there would mix two runs. Set checkpoint.load={save} to continue the run "
            "saved there, or choose another checkpoint.save directory")
    if it < newest:
        raise CheckpointError(
            f"{key}: {save} holds checkpoints up to iteration {newest}, newer than the resumed {resume_from}; "
            f"saving there would overwrite them. Set checkpoint.load={save} to resume from the newest, or choose "
            "another checkpoint.save directory for this branch")


def check_before_training(cfg) -> None:
    """Collective: every ``checkpoint`` path problem as one ``CheckpointError`` on every rank,
    before the model is built. Creates ``checkpoint.save`` if it does not exist."""
    from plugtron.checkpointing.loading import agree

    ck = cfg.checkpoint
    try:
        resume_from = resolve_load(ck.load) if ck.load else None
        if ck.load and resume_from is None and ck.exit_on_missing_checkpoint:
            raise CheckpointError(f"checkpoint.load: no checkpoint in {ck.load} and "
                                  "checkpoint.exit_on_missing_checkpoint is set")
        if resume_from is None and ck.pretrained_checkpoint:
            from plugtron.migrate.nemo2_checkpoint import is_nemo2_checkpoint

            if not is_nemo2_checkpoint(ck.pretrained_checkpoint):  # NeMo 2.0 dirs are checked as they load
                layout.resolve_checkpoint_dir(ck.pretrained_checkpoint, "checkpoint.pretrained_checkpoint")
        if ck.save:
            check_writable(ck.save, tag=f".rank{distributed.rank()}")
            check_save_target(ck.save, resume_from)
        error = None
    except CheckpointError as exc:
        error = str(exc)
    except OSError as exc:  # e.g. a path component that cannot be listed
        error = f"checkpoint: {exc.filename}: {exc.strerror}"
    agree(error)
