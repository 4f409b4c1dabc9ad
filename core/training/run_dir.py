"""The run directory of ``plugtron train``: a run whose config sets no ``checkpoint.save`` saves
under ``<checkpoint.runs_dir>/<name>-<UTC time>/`` (checkpoints, ``run_config.yaml`` and
``metrics.jsonl`` together), so the first run of a new user leaves a model to generate from.

Only the command line applies it: Python's ``train(cfg)`` (tests, scripts) saves exactly what its
config says. A ``checkpoint.save`` the user wrote, even ``null``, is kept. A run that resumes
(``checkpoint.load`` set to a save directory) and names no ``save`` saves back into that directory,
so resuming continues the run where it was, as its summary's resume line says.
"""

from __future__ import annotations

import os
import time
from typing import Optional



def run_name(recipe: str, config_path: Optional[str]) -> str:
    """``<YAML file stem, else recipe>-<UTC yyyymmdd-hhmmss>``."""
    base = os.path.splitext(os.path.basename(config_path))[0] if config_path else recipe
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def _agreed(name: str, cfg) -> str:
    """Rank 0's name on every rank (the clocks of the processes read different seconds).
    Collective under torchrun: starts the process group the trainer then reuses."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return name
    import torch.distributed as dist

    from plugtron import distributed

    distributed.init_process_group(cfg.dist.distributed_backend, cfg.dist.distributed_timeout_minutes)
    box = [name]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _note(cfg, line: str) -> None:
    """First of the lines the run logs when it starts (``cfg.notes``): after the config validated, so
    a refused config prints its error alone."""
    cfg.notes = [line, *getattr(cfg, "notes", [])]


def apply_default(cfg, recipe: str, config_path: Optional[str]) -> Optional[str]:
    """Set ``checkpoint.save`` when the user set none (see the module doc); returns the directory
    it set, or ``None`` when it left the config as it was."""
    ck = cfg.checkpoint
    if "checkpoint.save" in getattr(cfg, "user_set", {}) or ck.save:
        return None
    if ck.load and os.path.isdir(ck.load) and not os.path.basename(os.path.normpath(ck.load)).startswith("iter_"):
        ck.save = ck.load
        _note(cfg, f"run directory: {os.path.abspath(ck.save)} (resumed run; it saves where it was loaded from)")
        return ck.save
    if not ck.runs_dir:
        return None
    ck.save = os.path.join(ck.runs_dir, _agreed(run_name(recipe, config_path), cfg))
    _note(cfg, f"run directory: {os.path.abspath(ck.save)} (checkpoints and metrics; set checkpoint.save=DIR "
               "to choose it, checkpoint.save=null to save nothing)")
    return ck.save
