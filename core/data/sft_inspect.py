"""``plugtron data inspect CONFIG [--split train] [--n 3]``: what an SFT run will learn (light to import: the
parser is built without torch; running it loads the config as ``train`` does).

Prints the first ``n`` examples of a split as the model sees them (chat template applied), learned
tokens marked: green on a terminal, else between ``[[`` and ``]]``; masked (prompt) tokens plain.
Then token counts, the learned fraction and, with packing on, the packing efficiency (fraction of
positions holding example tokens rather than padding), computed with the same packer as training.
"""

from __future__ import annotations

import os
import sys
from typing import List

from plugtron.errors import DataError

SPLITS = {"train": "train", "validation": "valid", "test": "test"}  # --split -> sft_sources' split
GREEN, RESET = "\033[32m", "\033[0m"


def add_arguments(p) -> None:
    p.add_argument("args", nargs="*", metavar="[CONFIG.yaml] [key=value]",
                   help="the SFT config (and dotted overrides) a run would use")
    p.add_argument("--split", choices=sorted(SPLITS), default="train")
    p.add_argument("--n", type=int, default=3, help="examples to print (default 3)")
    p.add_argument("--recipe", default="tiny")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="mark learned tokens with colour (auto: on a terminal) or with [[ ]]")


def render(tokenizer, ids, answer, color: bool) -> str:
    """The example's text, span by span, learned spans marked. The first token is never predicted,
    so it counts as masked, as in training (``loss_mask = answer[1:]``)."""
    import numpy

    learned = numpy.asarray(answer, dtype=bool).copy()
    learned[:1] = False
    eod_text = (getattr(tokenizer, "special_tokens", {}) or {}).get("eos_token") or "<EOD>"
    out: List[str] = []
    k = 0
    while k < len(ids):
        j = k + 1
        while j < len(ids) and learned[j] == learned[k]:
            j += 1
        # detokenize drops EOD (it is padding too): show it where it stands, by name
        pieces, start = [], k
        for e in [p for p in range(k, j) if ids[p] == tokenizer.eod] + [j]:
            pieces.append(tokenizer.detokenize(ids[start:e]) + (eod_text if e < j else ""))
            start = e + 1
        text = "".join(pieces)
        out.append((f"{GREEN}{text}{RESET}" if color else f"[[{text}]]") if learned[k] else text)
        k = j
    return "".join(out)


def inspect(cfg, split: str, n: int, color: bool, write=print) -> dict:
    from plugtron.data.packing import pack_rows
    from plugtron.data.sft_examples import data_format, iter_examples
    from plugtron.data.sft_sources import SPLIT_NAMES, resolve_splits
    from plugtron.data.tokenizers import build_tokenizer

    ds = cfg.dataset
    if not hasattr(ds, "dataset_root"):  # pretraining sections have a data_format too
        raise DataError("data inspect: the config's dataset is not an SFT dataset (FinetuningDatasetConfig)")
    source = resolve_splits(ds)[SPLITS[split]]
    if source is None:
        raise DataError(f"data inspect: {ds.dataset_root} has no {SPLIT_NAMES[SPLITS[split]]} split "
                        "(no file, and not carved out with dataset.val_proportion/test_proportion)")
    tokenizer = build_tokenizer(cfg.tokenizer)
    fmt = data_format(ds)
    describe = getattr(fmt, "describe", None)
    write(f"{source}: " + (describe(ds, tokenizer) if describe is not None else f"format {ds.data_format}"))
    sizes, learned, total = [], 0, 0
    for shown, (where, (ids, answer)) in enumerate(iter_examples(source, ds, tokenizer, fmt)):
        n_learned = int(answer[1:].sum())
        if shown < n:
            write(f"--- {_short(where)}  {len(ids)} tokens, {n_learned} learned, "
                  f"{len(ids) - n_learned} masked")
            write(render(tokenizer, ids.tolist(), answer, color))
        sizes.append(len(ids) - 1)
        learned += n_learned
        total += len(ids) - 1
    stats = {"examples": len(sizes), "positions": total, "learned": learned}
    write(f"=== {len(sizes)} examples, {total} predicted positions, {learned} learned "
          f"({learned / max(total, 1):.1%})")
    if ds.packing:
        size = ds.packed_sequence_specs.packed_sequence_size
        rows = pack_rows(sizes, size)
        stats["packing_efficiency"] = total / (len(rows) * size)
        write(f"packing: {len(rows)} rows of {size}, efficiency {stats['packing_efficiency']:.1%} "
              "(positions holding example tokens)")
    else:
        stats["padding_efficiency"] = total / (len(sizes) * ds.seq_length)
        write(f"no packing: one example per row of {ds.seq_length}, efficiency {stats['padding_efficiency']:.1%}")
    return stats


def _short(where: str) -> str:
    """``/data/sft/training.jsonl:3`` -> ``training.jsonl:3`` (the full path is in the first line)."""
    return os.path.basename(where)


def run(ns, split_args) -> int:
    from plugtron.config import load_config

    if ns.n < 0:
        raise DataError(f"--n: {ns.n} is negative")
    config, overrides = split_args(ns.args)
    cfg = load_config(config, overrides, recipe=ns.recipe, repeats_ok=False).validate(1)
    color = ns.color == "always" or (ns.color == "auto" and sys.stdout.isatty())
    inspect(cfg, ns.split, ns.n, color)
    return 0
