"""``plugtron tokens FILE [CONFIG.yaml] [tokenizer.KEY=VALUE ...]``: how many tokens a text or JSONL
file makes with the config's tokenizer (documents, tokens, tokens per document), torch-free.

A text file is one document per non-empty line; a JSONL file one document per line, its ``--key``
field (default ``text``). The tokenizer comes from the YAML and the overrides exactly as ``plugtron
train`` reads them, so the count is what training will see (each document also gets its EOD token).
"""

PLUGTRON_API = ">=1,<2"


def add_parser(sub) -> None:
    """Count the tokens of a text or JSONL file with the config's tokenizer."""
    p = sub.add_parser("tokens", help="count the tokens of a text or JSONL file with the config's tokenizer")
    p.add_argument("file", help="a .txt (one document per line) or .jsonl file")
    p.add_argument("args", nargs="*", metavar="[CONFIG.yaml] [tokenizer.KEY=VALUE]",
                   help="where the tokenizer comes from, as for plugtron train")
    p.add_argument("--key", default="text", help="the JSONL field holding the text (default: text)")
    p.set_defaults(handler=run)


def count(path: str, tokenizer, key: str = "text"):
    """(documents, tokens) of ``path``, EOD included; errors name file:line."""
    import json

    from plugtron.errors import DataError

    docs = tokens = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            text = line.rstrip("\n")
            if path.endswith(".jsonl"):
                try:
                    text = json.loads(line)[key]
                except (ValueError, KeyError, TypeError):
                    raise DataError(f"{path}:{lineno}: expected a JSON object with a {key!r} string") from None
                if not isinstance(text, str):
                    raise DataError(f"{path}:{lineno}: expected a JSON object with a {key!r} string")
            docs += 1
            tokens += len(tokenizer.tokenize(text)) + 1
    return docs, tokens


def run(ns) -> int:
    import os

    from plugtron.config.torch_free import structure_sections
    from plugtron.data import build_tokenizer
    from plugtron.errors import DataError

    if not os.path.isfile(ns.file):
        raise DataError(f"{ns.file}: no such file")
    from plugtron.cli.plugin_list import merged_data

    config = next((a for a in ns.args if "=" not in a), None)
    data = merged_data(config, [a for a in ns.args if "=" in a])
    tokenizer = build_tokenizer(structure_sections(data, "command line").tokenizer)
    docs, tokens = count(ns.file, tokenizer, ns.key)
    print(f"{ns.file}: {docs} documents, {tokens} tokens ({tokens / max(docs, 1):.1f} per document, "
          f"{type(tokenizer).__name__})")
    return 0
