"""Throughput of ``plugtron data preprocess`` next to the raw tokenizer's, in one run.

Generates a JSONL of ``--mb`` MB (default 100) by cycling the documents of the bundled corpus (real
English text, each copy tagged so no two documents are equal), trains a byte-level BPE on its first
few MB with the ``tokenizers`` library, then for the byte-level tokenizer and that BPE prints:

- raw: the tokenizer alone, in this process, over the first ``--raw-mb`` MB of documents, the same
  call preprocess makes (``tokenize_batch`` where the tokenizer has it) - the per-process upper bound;
- preprocess at each ``--workers`` count: JSONL read + parse + tokenize + write ``.bin``/``.idx`` +
  merge (the command's own timing, after imports).

    python benchmarks/preprocess.py                  # 100 MB, workers 1 and 2
    python benchmarks/preprocess.py --mb 5 --workers 1 2   # a quick check
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")


def generate(path: str, mb: float) -> int:
    from plugtron.data.make_corpus import bundled_corpus_jsonl

    with open(bundled_corpus_jsonl(), encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f]
    target, written, n = int(mb * 2**20), 0, 0
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            line = json.dumps({"text": f"[copy {n // len(docs)}] " + docs[n % len(docs)]}, ensure_ascii=False) + "\n"
            out.write(line)
            written += len(line.encode("utf-8"))
            n += 1
    return n


def read_texts(path: str, mb: float):
    texts, size = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            size += len(line)
            if size >= mb * 2**20:
                break
    return texts


def raw_throughput(tokenizer, texts) -> float:
    batch = getattr(tokenizer, "tokenize_batch", None)
    t0, tokens = time.perf_counter(), 0
    for i in range(0, len(texts), 256):
        chunk = texts[i:i + 256]
        ids = batch(chunk) if batch else [tokenizer.tokenize(t) for t in chunk]
        tokens += sum(len(x) + 1 for x in ids)  # + EOD, as preprocess counts
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="size of the generated JSONL in MB")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--raw-mb", type=float, default=10.0, help="MB of documents for the raw tokenizer rate")
    ap.add_argument("--bpe-vocab", type=int, default=8000)
    ap.add_argument("--dir", help="work directory (default: a temporary one, removed at the end)")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread per process, like the workers

    from megatron.core.datasets.indexed_dataset import IndexedDataset  # noqa: F401  (import cost out of timings)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from plugtron.config import TokenizerConfig
    from plugtron.data import build_tokenizer
    from plugtron.data.preprocess.parallel import Progress, preprocess

    work = args.dir or tempfile.mkdtemp(prefix="plugtron-bench-")
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, "corpus.jsonl")
    t0 = time.perf_counter()
    n_docs = generate(src, args.mb)
    print(f"generated {src}: {os.path.getsize(src) / 2**20:.1f} MB, {n_docs:,} documents ({time.perf_counter() - t0:.1f} s)")

    bpe_dir = os.path.join(work, "bpe")
    os.makedirs(bpe_dir, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(read_texts(src, min(args.mb, 5.0)), trainers.BpeTrainer(
        vocab_size=args.bpe_vocab, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(os.path.join(bpe_dir, "tokenizer.json"))

    configs = {"byte-level": TokenizerConfig(),
               f"BPE {args.bpe_vocab}": TokenizerConfig(tokenizer_type="HuggingFaceTokenizer", tokenizer_model=bpe_dir)}
    texts = read_texts(src, min(args.raw_mb, args.mb))
    rows = []
    for name, cfg in configs.items():
        rate = raw_throughput(build_tokenizer(cfg), texts)
        rows.append((name, "raw tokenizer (1 process)", rate, None))
        for w in args.workers:
            s = preprocess(src, os.path.join(work, f"out_{w}"), cfg, workers=w, overwrite=True,
                           progress=Progress(os.path.getsize(src), stream=io.StringIO()))
            rows.append((name, f"preprocess, {w} worker(s)", s["tokens"] / s["seconds"], s["seconds"]))
    print(f"\n{'tokenizer':<12} {'what':<28} {'tokens/s':>14} {'seconds':>8}   ({os.cpu_count()} CPUs)")
    for name, what, rate, secs in rows:
        print(f"{name:<12} {what:<28} {rate:>14,.0f} {'' if secs is None else f'{secs:8.1f}':>8}")
    if not args.dir:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
