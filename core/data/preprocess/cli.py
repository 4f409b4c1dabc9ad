"""Arguments and output of ``plugtron data preprocess`` (the work is in ``plugtron.data.preprocess.parallel``).

Importing this module must stay torch-free: ``plugtron --help`` builds its parser from it.
"""

from __future__ import annotations

import argparse
import io
import os
import sys

from plugtron.errors import ConfigError

_TOKENIZER_FLAGS = ("tokenizer_type", "vocab_file", "merge_file", "tokenizer_model", "vocab_size")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", required=True, help="JSONL file, one JSON object (document) per line")
    p.add_argument("--output-prefix", required=True,
                   help="writes OUTPUT_PREFIX_<json-key>_document.{bin,idx} (Megatron-LM's naming); "
                        "use that path, without suffix, in dataset.blend")
    p.add_argument("--json-key", default="text", help="key holding the document text (default: text)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--config", help="take the tokenizer: section of this YAML config (flags below override it)")
    p.add_argument("--tokenizer-type", choices=["ByteLevelTokenizer", "NullTokenizer", "GPT2BPETokenizer",
                                                "HuggingFaceTokenizer", "SentencePieceTokenizer"])
    p.add_argument("--vocab-file", help="GPT2BPETokenizer: vocab.json")
    p.add_argument("--merge-file", help="GPT2BPETokenizer: merges.txt")
    p.add_argument("--tokenizer-model", help="HuggingFaceTokenizer: tokenizer.json or its directory; "
                                             "SentencePieceTokenizer: the .model file")
    p.add_argument("--vocab-size", type=int, help="NullTokenizer: number of ids")
    p.add_argument("--no-append-eod", dest="append_eod", action="store_false",
                   help="do not end each document with the tokenizer's EOD token")
    p.add_argument("--strict", action="store_true", help="stop at the first corrupt line (default: count and skip)")
    p.add_argument("--overwrite", action="store_true", help="redo everything, replacing outputs and finished parts")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def tokenizer_config(ns):
    """``TokenizerConfig`` from ``--config``'s tokenizer section, then the tokenizer flags."""
    from plugtron.config.data import TokenizerConfig

    from plugtron.config import yaml_io
    from plugtron.config.converter import structure

    fields = {}
    source = "command line"
    if ns.config:
        data = yaml_io.load_file(ns.config)  # the loader `train` uses: same limits, same messages
        section = data.get("tokenizer") or {}
        if not isinstance(section, dict):
            raise ConfigError([f"tokenizer: expected a mapping, got {type(section).__name__}"], source=ns.config)
        unknown = sorted(set(section) - set(_TOKENIZER_FLAGS))
        if unknown:
            raise ConfigError([f"tokenizer.{k}: unknown field (expected one of {', '.join(_TOKENIZER_FLAGS)})"
                               for k in unknown], source=ns.config)
        fields.update(section)
        source = f"{ns.config} + command line"
    fields.update({k: getattr(ns, k) for k in _TOKENIZER_FLAGS if getattr(ns, k) is not None})
    try:
        tok = structure(fields, TokenizerConfig, source=source)
    except ConfigError as err:  # name the fields as they are written in a config: tokenizer.<field>
        raise ConfigError([f"tokenizer.{p}" for p in err.problems], source=source) from None
    from types import SimpleNamespace

    from plugtron.config.rules import RULES, check

    problems = check(SimpleNamespace(tokenizer=tok), {k: v for k, v in RULES.items() if k.startswith("tokenizer.")})
    if problems:
        raise ConfigError(problems, source=source)
    return tok


def run(ns) -> int:
    from plugtron.data.preprocess.parallel import Progress, preprocess

    def log(msg: str) -> None:
        print(f"[preprocess] {msg}", file=sys.stderr)

    tok_cfg = tokenizer_config(ns)
    size = os.path.getsize(ns.input) if os.path.isfile(ns.input) else 0
    progress = Progress(size, stream=io.StringIO() if ns.quiet else sys.stderr)
    s = preprocess(ns.input, ns.output_prefix, tok_cfg, json_key=ns.json_key, workers=ns.workers,
                   append_eod=ns.append_eod, strict=ns.strict, overwrite=ns.overwrite, progress=progress, log=log)
    if s.get("up_to_date"):
        return 0
    secs = max(s["seconds"], 1e-9)
    print(f"{s['output_prefix']}.bin/.idx: {s['documents']:,} documents, {s['tokens']:,} tokens "
          f"({s['tokenizer']}, vocab {s['vocab_size']:,}, {s['dtype']}) in {s['seconds']:.1f} s with "
          f"{s['workers']} worker(s): {s['documents'] / secs:,.0f} docs/s, {s['tokens'] / secs:,.0f} tokens/s"
          + (f"; {s['resumed_parts']} of {s['parts']} parts resumed" if s["resumed_parts"] else ""))
    if s["corrupt"] or s["empty"]:
        print(f"skipped {s['corrupt']:,} corrupt line(s) and {s['empty']:,} empty document(s)"
              + "".join(f"\n  {e}" for e in s["corrupt_examples"])
              + ("\n  (use --strict to stop at the first corrupt line)" if s["corrupt"] else ""))
    return 0
