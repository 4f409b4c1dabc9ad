"""What ``train`` would refuse once it reads files, checked before anything is built: the tokenizer's
files, the SFT data files of every split the run reads (and the format of their first line), and
the checkpoint ``checkpoint.pretrained_checkpoint`` names (and that ``datasets`` is installed where a split
needs it). ``config show`` and ``train`` run the same
checks (after ``validate()``), so they give the same verdict, and ``train`` gives it before it loads a
base model. Read-only and cheap: a first line per file, the tokenizer's files, a directory listing.
Each message names the field that fixes it.
"""

from __future__ import annotations

import os
from typing import List

from plugtron.errors import CheckpointError, ConfigError, DataError


def _tokenizer(cfg, problems: List[str]) -> None:
    if cfg.tokenizer.tokenizer_type in ("ByteLevelTokenizer", "NullTokenizer"):
        return  # no file; validate() checked the rest
    from plugtron.data.tokenizers import build_tokenizer

    try:
        build_tokenizer(cfg.tokenizer)
    except DataError as err:
        problems.append(str(err))


def _first_record(source):
    for _, obj in source.records():
        return obj  # the loader names file:line of any bad record when it reads them all
    return None


def _sft_data(cfg, problems: List[str]) -> None:
    ds, train = cfg.dataset, cfg.train
    if not hasattr(ds, "dataset_root") or not ds.dataset_root:
        return  # pretraining data, or validate() already named the missing root
    from plugtron.data.gpt import sample_counts
    from plugtron.data.sft_examples import format_hint
    from plugtron.data.sft_sources import resolve_splits

    _, valid_n, test_n = sample_counts(train)
    needed = {"train": True, "valid": ds.do_validation and valid_n > 0, "test": ds.do_test and train.eval_iters > 0}
    specs = ds.packed_sequence_specs
    prepacked = {"train": specs.packed_train_data_path if specs else None,
                 "valid": specs.packed_val_data_path if specs else None, "test": None}
    reused = {split: bool(p and os.path.isfile(os.path.expanduser(p))) for split, p in prepacked.items()}
    try:
        found = resolve_splits(ds, require_train=not reused["train"])
        for split, source in found.items():
            if not needed[split] or reused[split] or source is None:
                continue  # validation and test are optional: the run goes on without them
            source.check_readable()
            hint = format_hint(_first_record(source), ds)
            if hint:
                problems.append(f"{source}: the first record does not match dataset.data_format {ds.data_format!r}{hint}")
    except (DataError, OSError) as err:
        problems.append(str(err))


def _checkpoint(cfg, problems: List[str]) -> None:
    """``pretrained_checkpoint`` holds a checkpoint (unless ``load`` resumes one, which wins)."""
    from plugtron.checkpointing import layout
    from plugtron.checkpointing.paths import resolve_load

    ck = cfg.checkpoint
    try:
        if ck.load and resolve_load(ck.load) is not None:
            return
    except CheckpointError:
        return  # check_before_training names it, with the same words, at train time
    path = ck.pretrained_checkpoint
    if not path:
        return
    from plugtron.migrate.nemo2_checkpoint import is_nemo2_checkpoint

    if os.path.isdir(path) and is_nemo2_checkpoint(path):
        return  # checked as it loads (context/model.yaml against the model section)
    try:
        layout.resolve_checkpoint_dir(path, "checkpoint.pretrained_checkpoint")
    except CheckpointError as err:
        problems.append(str(err))


def check(cfg, checkpoint: bool = True) -> None:
    """Every problem at once as one ``ConfigError`` (after ``cfg.validate()``). ``train`` passes
    ``checkpoint=False``: its collective path check (``checkpointing.paths.check_before_training``)
    right after gives the same message for the checkpoint, as a ``CheckpointError`` on every rank."""
    problems: List[str] = []
    for step in (_tokenizer, _sft_data) + ((_checkpoint,) if checkpoint else ()):
        step(cfg, problems)
    if problems:
        raise ConfigError(problems, source="files")
