"""The one way a checkpoint becomes visible, shared by training saves (``Checkpointer``) and
Hugging Face import (``plugtron.providers.hf.megatron_side``)::

    staging = open_staging(root, it)        # rank 0: iter_XXXXXXX.staging/, leftovers removed
    ... every rank writes its files into staging (dist_checkpointing.save, rank files) ...
    write_run_config(staging, config)      # rank 0
    publish(root, it)                      # rank 0: manifest, atomic rename, tracker

so a converted checkpoint is verified on load exactly like a saved one. Both functions with
``root`` are collective: every rank calls them; the file-system work runs on global rank 0 between
barriers (``plugtron.checkpointing.layout`` says why each step is safe to kill).
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional

from plugtron import distributed
from plugtron.errors import CheckpointError
from plugtron.checkpointing import layout

log = logging.getLogger("plugtron")


def open_staging(root: str, iteration: int) -> str:
    """Collective. Rank 0 creates ``root``, removes what interrupted saves or deletions left there
    and makes an empty staging directory for ``iteration``; returns its path on every rank."""
    staging = layout.staging_path(root, iteration)
    if distributed.is_rank0():
        os.makedirs(root, exist_ok=True)
        for gone in layout.clean_leftovers(root):
            log.warning(f"checkpoint: removed {os.path.join(root, gone)} (an interrupted save or deletion)")
        os.makedirs(staging)
    distributed.barrier()
    # Every rank writes its shards into rank 0's directory: on a node that does not share rank 0's
    # filesystem they would land in a local copy that is never published (or fail half-way).
    blind = distributed.ranks_not_seeing(staging)  # collective: one small all_gather_object per save
    if blind:
        raise CheckpointError(
            f"checkpoint directory {root}: {', '.join(blind[:4])}{' ...' if len(blind) > 4 else ''} cannot see "
            "the directory rank 0 created there; in a multi-node run checkpoint.save must be on a filesystem "
            "shared by all nodes (a relative path resolves per node's working directory)")
    return staging


def write_run_config(staging: str, config) -> None:
    """The config the checkpoint was made with (rank 0 only): ``pretrained_checkpoint`` and
    export read its ``model`` section to rebuild the provider. A file-backed tokenizer's files are
    copied into the checkpoint and recorded relative to it (``tokenizer_files``)."""
    import copy

    from plugtron.checkpointing import tokenizer_files
    from plugtron.config import to_yaml

    recorded = tokenizer_files.copy_into(staging, config.tokenizer)
    if recorded is not config.tokenizer:
        config = copy.copy(config)
        config.tokenizer = recorded

    with open(os.path.join(staging, layout.RUN_CONFIG), "w", encoding="utf-8") as f:
        f.write(to_yaml(config))


def publish(root: str, iteration: int, then: Optional[Callable[[], None]] = None) -> str:
    """Collective, after every rank's files are in the staging directory: rank 0 writes the
    manifest (size + CRC32 of every file), renames the directory to ``iter_XXXXXXX`` and updates
    the tracker, then runs ``then`` (e.g. retention). Returns the published directory."""
    distributed.barrier()
    final = layout.iter_path(root, iteration)
    if distributed.is_rank0():
        staging = layout.staging_path(root, iteration)
        layout.write_manifest(staging)
        layout.publish(staging, final)
        layout.write_tracker(root, iteration)
        if then is not None:
            then()
    distributed.barrier()
    return final
