"""A checkpoint carries its tokenizer: the files of a file-backed tokenizer are copied into
``<checkpoint>/tokenizer/`` when the checkpoint is written (training save, ``import-hf``,
``peft merge``) and its ``run_config.yaml`` records paths relative to the checkpoint directory.
So a checkpoint generates, merges, exports and fine-tunes with the right tokenizer wherever it
is moved and whatever the working directory; ``resolve`` turns the recorded paths back into
absolute ones when a checkpoint's config is read.

Torch-free (``config show`` reads checkpoints' tokenizers too).
"""

from __future__ import annotations

import os
import shutil
from typing import Dict, Optional, Tuple

import attrs

TOKENIZER_DIR = "tokenizer"
# What a Hugging Face tokenizer directory holds (what AutoTokenizer.from_pretrained reads); weights
# and model configs next to them are not the tokenizer's.
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                      "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json")
# the fields that name files, per tokenizer type
_FILE_FIELDS = {
    "HuggingFaceTokenizer": ("tokenizer_model",),
    "SentencePieceTokenizer": ("tokenizer_model",),
    "GPT2BPETokenizer": ("vocab_file", "merge_file"),
}
# Bytes read at the first save of a process: a run resumed from a checkpoint whose own tokenizer
# copy is removed by retention (most_recent_k) keeps saving the same files.
_SNAPSHOTS: Dict[str, bytes] = {}


def hf_files(directory: str) -> Dict[str, str]:
    """``{file name: path}`` of the tokenizer files in a Hugging Face directory."""
    return {n: os.path.join(directory, n) for n in HF_TOKENIZER_FILES if os.path.isfile(os.path.join(directory, n))}


_FOUND: Dict[tuple, Dict[str, Tuple[str, Dict[str, str]]]] = {}  # what _sources found, for when it is gone


def _sources(tok_cfg) -> Optional[Dict[str, Tuple[str, Dict[str, str]]]]:
    """``{field: (recorded value relative to the checkpoint, {file name: source path})}``, or None
    when the tokenizer names no local file (byte-level, null, or a path that does not exist and was
    never seen in this process)."""
    key = (tok_cfg.tokenizer_type, *(getattr(tok_cfg, f) for f in _FILE_FIELDS.get(tok_cfg.tokenizer_type, ())))
    found = _find(tok_cfg)
    if found is not None:
        _FOUND[key] = found
    return found if found is not None else _FOUND.get(key)


def _find(tok_cfg) -> Optional[Dict[str, Tuple[str, Dict[str, str]]]]:
    out = {}
    for field in _FILE_FIELDS.get(tok_cfg.tokenizer_type, ()):
        value = getattr(tok_cfg, field)
        if not value:
            return None
        path = os.path.abspath(os.path.expanduser(value))
        if os.path.isdir(path):
            files = hf_files(path)
            if not files:
                return None
            out[field] = (TOKENIZER_DIR, files)
        elif os.path.isfile(path):
            files = {os.path.basename(path): path}
            if tok_cfg.tokenizer_type == "HuggingFaceTokenizer":  # its eos_token is in tokenizer_config.json beside it
                files = {**hf_files(os.path.dirname(path)), **files}
            out[field] = (f"{TOKENIZER_DIR}/{os.path.basename(path)}", files)
        else:
            return None
    return out or None


def _read(path: str) -> bytes:
    """The file's bytes now; the last bytes read once it is gone (see ``_SNAPSHOTS``)."""
    try:
        with open(path, "rb") as f:
            _SNAPSHOTS[path] = f.read()
    except FileNotFoundError:
        if path not in _SNAPSHOTS:
            raise
    return _SNAPSHOTS[path]


def copy_into(staging: str, tok_cfg):
    """Copy the tokenizer's files into ``staging/tokenizer/``; returns the ``TokenizerConfig`` to
    record (paths relative to the checkpoint), or ``tok_cfg`` unchanged when it names no file."""
    sources = _sources(tok_cfg)
    if sources is None:
        return tok_cfg
    target = os.path.join(staging, TOKENIZER_DIR)
    os.makedirs(target, exist_ok=True)
    for _, files in sources.values():
        for name, src in files.items():
            with open(os.path.join(target, name), "wb") as f:
                f.write(_read(src))
    return attrs.evolve(tok_cfg, **{field: rel for field, (rel, _) in sources.items()})


def remember(tok_cfg) -> None:
    """Read the tokenizer's files now (at the start of a run), so later saves copy these bytes."""
    for _, files in (_sources(tok_cfg) or {}).values():
        for src in files.values():
            _read(src)


def resolve(tok_cfg, ckpt_dir: str):
    """``tok_cfg`` read from ``ckpt_dir``'s run_config.yaml with relative file paths made absolute
    against ``ckpt_dir`` (where ``copy_into`` put them). Paths that do not exist there stay as
    recorded (an older checkpoint's path relative to the working directory)."""
    changes = {}
    for field in _FILE_FIELDS.get(tok_cfg.tokenizer_type, ()):
        value = getattr(tok_cfg, field)
        if value and not os.path.isabs(os.path.expanduser(value)):
            inside = os.path.join(os.path.abspath(ckpt_dir), value)
            if os.path.exists(inside):
                changes[field] = inside
    return attrs.evolve(tok_cfg, **changes) if changes else tok_cfg


def copy_hf_files(tok_cfg, out_dir: str) -> int:
    """``export-hf``: the tokenizer's files next to config.json (a Hugging Face tokenizer's own
    files; a SentencePiece model as ``tokenizer.model``), so ``AutoTokenizer`` loads the export.
    Returns how many files were written."""
    sources = _sources(tok_cfg)
    if sources is None:
        return 0
    n = 0
    for _, files in sources.values():
        for name, src in files.items():
            dest = "tokenizer.model" if tok_cfg.tokenizer_type == "SentencePieceTokenizer" else name
            shutil.copyfile(src, os.path.join(out_dir, dest))
            n += 1
    return n
