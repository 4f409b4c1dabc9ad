"""The corpus bundled with plugtron: docstrings of Python's standard library (PSF-licensed text).

Two steps, both deterministic:

1. ``harvest``: parse (never import: ``antigravity`` opens a browser) every public, non-test module of
   the running Python's standard library in sorted order, and keep each distinct docstring of
   ``MIN_CHARS`` or more characters as one document of ``corpus/tiny_corpus.jsonl``. The text depends
   on the Python version, so the JSONL is committed rather than regenerated at install time.
2. ``build``: tokenize the JSONL with the byte-level tokenizer into Megatron's indexed dataset
   ``corpus/tiny_corpus_text_document.{bin,idx}``, an EOD after every document (as Megatron-LM's
   ``preprocess_data.py --append-eod`` does). Same JSONL in, same bytes out.

Regenerate: ``python -m plugtron.data.make_corpus`` (both steps) or ``... --build-only``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
JSONL_NAME = "tiny_corpus.jsonl"
PREFIX_NAME = "tiny_corpus_text_document"

MIN_CHARS = 200  # shorter docstrings are mostly one-liners ("Return self.") and teach little
MAX_CHARS = 8000
MAX_TOTAL_BYTES = 1_400_000  # 3.11 yields ~1.18 MB; the cap keeps other Pythons under ~4 MB in all
_SKIP_DIRS = {"test", "tests", "idle_test"}


def bundled_corpus_prefix() -> str:
    """Path prefix (no ``.bin``/``.idx``) of the bundled indexed dataset."""
    return str(CORPUS_DIR / PREFIX_NAME)


def bundled_corpus_jsonl() -> str:
    return str(CORPUS_DIR / JSONL_NAME)


def _stdlib_sources() -> Iterator[Path]:
    """Source files of public, non-test stdlib modules, in a fixed order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in sorted(n for n in sys.stdlib_module_names if not n.startswith("_") and n != "test"):
        package, module = stdlib / name, stdlib / f"{name}.py"
        if module.is_file():
            yield module
        elif package.is_dir():
            for root, dirs, files in os.walk(package):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith(("_", ".")))
                for f in sorted(files):
                    if f.endswith(".py") and (f == "__init__.py" or not f.startswith("_")):
                        yield Path(root) / f


def _docstrings(tree: ast.AST) -> Iterator[str]:
    """Module, class and function docstrings in source order (depth first)."""
    if isinstance(tree, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        doc = ast.get_docstring(tree, clean=True)
        if doc:
            yield doc
    for child in ast.iter_child_nodes(tree):
        yield from _docstrings(child)


def harvest(min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS,
            max_total_bytes: int = MAX_TOTAL_BYTES) -> List[str]:
    """Distinct docstrings of reasonable length, first occurrence wins, until the byte budget."""
    docs, seen, total = [], set(), 0
    for path in _stdlib_sources():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # e.g. Python-2 syntax kept as data; the same files are skipped every run
        for doc in _docstrings(tree):
            if not min_chars <= len(doc) <= max_chars or doc in seen:
                continue
            size = len(doc.encode("utf-8"))
            if total + size > max_total_bytes:
                return docs
            seen.add(doc)
            docs.append(doc)
            total += size
    return docs


def write_jsonl(docs: List[str], path: str) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for doc in docs:
            f.write(json.dumps({"text": doc}, ensure_ascii=False) + "\n")


def build_indexed_dataset(jsonl_path: str, out_prefix: str, tokenizer=None) -> Tuple[int, int]:
    """Tokenize ``jsonl_path`` into ``out_prefix.bin/.idx`` in this process, stopping at the first
    corrupt line; returns (documents, tokens incl. EOD). ``plugtron data preprocess`` runs the same
    writer on several byte ranges in parallel."""
    from plugtron.data.preprocess.jsonl_to_indexed import PartSpec, write_part
    from plugtron.data.tokenizers import ByteLevelTokenizer

    spec = PartSpec(jsonl_path, 0, os.path.getsize(jsonl_path), 1, out_prefix, strict=True)
    stats = write_part(spec, tokenizer or ByteLevelTokenizer())
    return stats.docs, stats.tokens


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(CORPUS_DIR))
    parser.add_argument("--build-only", action="store_true", help="only rebuild .bin/.idx from the JSONL")
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    jsonl = os.path.join(args.out_dir, JSONL_NAME)
    if not args.build_only:
        write_jsonl(harvest(), jsonl)
    docs, tokens = build_indexed_dataset(jsonl, os.path.join(args.out_dir, PREFIX_NAME))
    print(f"{jsonl}: {docs} documents, {tokens} tokens (byte-level, EOD included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
