"""SFT JSONL -> tokenized examples: token ids plus which of them are answer tokens (torch-free).

An example is ``ids`` (prompt, answer, EOD) and ``answer`` (same length, True where the token belongs
to the answer, EOD included). Training on it feeds ``ids[:-1]`` and predicts ``ids[1:]``; the loss
mask is ``answer[1:]``: exactly the answer tokens and the EOD are learned, never the prompt.

Formats (``dataset.data_format``; the entry-point group ``plugtron.data_formats``, where a package
adds its own: a class with ``expects`` and ``encode(record, ds, tokenizer, limit)``, optionally an
``Options`` attrs class structured from ``dataset.format_options`` and passed to its constructor):

- ``input_output``: ``{"input": prompt, "output": answer}`` (keys configurable). Prompt and answer
  are tokenized separately and concatenated, so the boundary is exact for any tokenizer.
- ``chat``: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``, rendered
  per message as ``<role>\\n`` (never learned) + ``content\\n`` (learned when the role is assistant).
"""

from __future__ import annotations

import json
import os
from typing import List, Tuple

import numpy

from plugtron.errors import DataError

SPLIT_FILES = {"train": "training.jsonl", "valid": "validation.jsonl", "test": "test.jsonl"}
ROLES = ("system", "user", "assistant")

Example = Tuple[numpy.ndarray, numpy.ndarray]  # (ids int32, answer bool)


def format_hint(obj, ds) -> str:
    """A hint when a line's keys say the other ``data_format`` than the one configured (used here and
    by ``plugtron.config.preflight`` on each file's first line)."""
    if not isinstance(obj, dict):
        return ""
    if ds.data_format != "chat" and ds.messages_key in obj and ds.input_key not in obj:
        return f"; the lines hold {ds.messages_key!r} (chat messages): set dataset.data_format: chat"
    if ds.data_format == "chat" and ds.messages_key not in obj and ds.input_key in obj and ds.output_key in obj:
        return f"; the lines hold {ds.input_key!r}/{ds.output_key!r}: set dataset.data_format: input_output"
    return ""


def _cut(ids: List[int], n: int, side: str) -> List[int]:
    """Drop ``n`` tokens from ``side`` ("left" or "right")."""
    if n <= 0:
        return ids
    return ids[n:] if side == "left" else ids[: max(len(ids) - n, 0)]


def truncate_pair(prompt: List[int], answer: List[int], limit: int, field: str, method: str):
    """Fit ``prompt + answer`` into ``limit`` tokens: cut ``field`` from ``method``'s side first, then
    the other one (a prompt from the left, an answer from the right)."""
    excess = len(prompt) + len(answer) - limit
    if excess <= 0:
        return prompt, answer
    if field == "input":
        cut = min(excess, len(prompt))
        prompt = _cut(prompt, cut, method)
        answer = _cut(answer, excess - cut, "right")
    else:
        cut = min(excess, len(answer))
        answer = _cut(answer, cut, method)
        prompt = _cut(prompt, excess - cut, "left")
    return prompt, answer


def _encode_pair(obj, ds, tokenizer, limit: int) -> Example:
    for key in (ds.input_key, ds.output_key):
        if not isinstance(obj.get(key), str):
            raise ValueError(f"expected a string under {key!r}, got {type(obj.get(key)).__name__}")
    prompt = tokenizer.tokenize(obj[ds.input_key])
    answer = tokenizer.tokenize(obj[ds.output_key]) + [tokenizer.eod]
    prompt, answer = truncate_pair(prompt, answer, limit, ds.truncation_field, ds.truncation_method)
    return (numpy.asarray(prompt + answer, dtype=numpy.int32),
            numpy.asarray([False] * len(prompt) + [True] * len(answer), dtype=bool))


def _encode_chat(obj, ds, tokenizer, limit: int) -> Example:
    messages = obj.get(ds.messages_key)
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"expected a non-empty list under {ds.messages_key!r}")
    ids: List[int] = []
    answer: List[bool] = []
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(f"message {k}: expected {{'role': one of {'/'.join(ROLES)}, 'content': string}}")
        head, body = tokenizer.tokenize(f"<{m['role']}>\n"), tokenizer.tokenize(m["content"] + "\n")
        ids += head + body
        answer += [False] * len(head) + [m["role"] == "assistant"] * len(body)
    if not any(answer):
        raise ValueError("no assistant message: nothing to learn")
    ids.append(tokenizer.eod)
    answer.append(True)
    return numpy.asarray(ids[:limit], dtype=numpy.int32), numpy.asarray(answer[:limit], dtype=bool)


class InputOutput:
    """{"input": prompt, "output": answer} per line (keys: dataset.input_key / output_key)."""

    def expects(self, ds) -> str:
        return f"{ds.input_key!r} and {ds.output_key!r} strings"

    def encode(self, record, ds, tokenizer, limit: int) -> Example:
        return _encode_pair(record, ds, tokenizer, limit)


class Chat:
    """{"messages": [{"role", "content"}, ...]} per line; assistant turns are learned."""

    def expects(self, ds) -> str:
        return f"{ds.messages_key!r} chat messages"

    def encode(self, record, ds, tokenizer, limit: int) -> Example:
        return _encode_chat(record, ds, tokenizer, limit)


def data_format(ds):
    """The format object ``dataset.data_format`` names, built with its structured options."""
    from plugtron import registry

    cls = registry.load("data_format", ds.data_format, "dataset.data_format")
    options = format_options(cls, ds.format_options)
    return cls(options) if options is not None else cls()


def format_options(cls, given):
    """``given`` (``dataset.format_options``) structured by the format's ``Options`` (strict, the core
    converter); ``None`` for a format without ``Options``, which then takes no options."""
    from plugtron.errors import ConfigError

    options_cls = getattr(cls, "Options", None)
    if options_cls is None:
        if given:
            raise ConfigError([f"dataset.format_options: the data format {getattr(cls, '__name__', cls)!r} takes no "
                               f"options; got {', '.join(map(str, given))}"])
        return None
    from plugtron.config.converter import structure

    return structure(dict(given or {}), options_cls, source="dataset.format_options")


def load_examples(path: str, ds, tokenizer) -> Tuple[List[Example], int]:
    """Examples of one split file, fit to ``seq_length + 1`` tokens; returns (examples, dropped),
    ``dropped`` counting examples whose answer was cut away entirely. A malformed line is an error
    naming ``file:line``: SFT sets are small and every example is meant to be learned."""
    if not os.path.isfile(path):
        raise DataError(f"dataset.dataset_root: {path} not found")
    fmt = data_format(ds)
    limit = ds.seq_length + 1
    examples, dropped = [], 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = None
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
                ids, answer = fmt.encode(obj, ds, tokenizer, limit)
            except ValueError as err:  # JSONDecodeError is a ValueError
                hint = format_hint(obj, ds)  # the other data_format, if the keys say so
                raise DataError(f"{path}:{lineno}: expected a JSON object with {fmt.expects(ds)} ({err}){hint}") from None
            if answer[1:].any():  # the first token is never predicted
                examples.append((ids, answer))
            else:
                dropped += 1
    if not examples:
        raise DataError(f"{path}: no usable examples ({dropped} lost their whole answer to seq_length "
                        f"{ds.seq_length})" if dropped else f"{path}: empty (no examples)")
    return examples, dropped
