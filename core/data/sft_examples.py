"""SFT records -> tokenized examples: token ids plus which of them are answer tokens (torch-free).

An example is ``ids`` (prompt, answer, EOD) and ``answer`` (same length, True where the token belongs
to the answer, EOD included). Training on it feeds ``ids[:-1]`` and predicts ``ids[1:]``; the loss
mask is ``answer[1:]``: exactly the answer tokens and the EOD are learned, never the prompt.

Records are read by ``sft_formats`` (input_output, chat, sharegpt, alpaca). A prompt/completion
pair is tokenized in two parts and concatenated (+ EOD), so its boundary is exact for any tokenizer.

Formats (``dataset.data_format``) are the entry-point group ``plugtron.data_formats``: plugtron's
own (``input_output``, ``chat``, ``sharegpt``, ``alpaca``: the classes below) and a package's, each a
class with ``expects(ds)`` and ``encode(record, ds, tokenizer, limit)``, optionally ``check(record,
ds)`` (a shape check before any tokenizing), ``describe(ds, tokenizer)`` and an ``Options`` attrs
class structured from ``dataset.format_options`` and passed to its constructor.

A conversation is rendered with the chat template (``chat_template``): the whole conversation is
rendered and tokenized once, exactly as ``apply_chat_template`` does at inference. The tokens of
assistant message ``k`` are found without ``{% generation %}`` markers: they run from the end of
``render(messages[:k], add_generation_prompt=True)`` to the end of ``render(messages[:k+1])``, each
prefix tokenized and required to be a prefix of the whole conversation's tokens. A template that
renders history differently once more turns follow, or a tokenizer that merges tokens across the
boundary, makes that split ambiguous: the example is an error naming ``file:line``, never trained
on as is. ``dataset.loss_mode``: ``assistant`` (every assistant message without ``train: false``),
``last_turn`` (the last assistant message only) or ``full`` (every token).

Without a template, plugtron's own format renders each message as ``<role>\\n`` (never learned) +
``content\\n`` (learned for assistant messages), tokenized per piece, then EOD (learned).
"""

from __future__ import annotations

import logging
from typing import Iterator, List, Optional, Tuple

import numpy

from plugtron.data import chat_template as templates
from plugtron.data.sft_formats import Conversation, Pair, expected_shape, read_record
from plugtron.errors import DataError

log = logging.getLogger("plugtron")
SPLIT_FILES = {"train": "training.jsonl", "valid": "validation.jsonl", "test": "test.jsonl"}

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


def _encode_pair(pair: Pair, tokenizer, ds, limit: int) -> Example:
    prompt = tokenizer.tokenize(pair.prompt)
    answer = tokenizer.tokenize(pair.completion) + [tokenizer.eod]
    prompt, answer = truncate_pair(prompt, answer, limit, ds.truncation_field, ds.truncation_method)
    return (numpy.asarray(prompt + answer, dtype=numpy.int32),
            numpy.asarray([False] * len(prompt) + [True] * len(answer), dtype=bool))


def _learned_messages(conv: Conversation, loss_mode: str) -> List[int]:
    trained = [k for k in range(len(conv.messages)) if conv.trained(k)]
    if loss_mode == "last_turn":
        last = max((k for k, m in enumerate(conv.messages) if m["role"] == "assistant"), default=None)
        trained = [last] if last in trained else []
    return trained


def _encode_plugtron(conv: Conversation, tokenizer, loss_mode: str, limit: int) -> Example:
    learned = set(_learned_messages(conv, loss_mode))
    ids: List[int] = []
    answer: List[bool] = []
    for k, m in enumerate(conv.messages):
        if m["role"] == "tool" or m.get("tool_calls"):
            raise ValueError(f"message {k}: tool calls need a chat template (dataset.chat_template); "
                             "plugtron's own format has none")
        head, body = tokenizer.tokenize(f"<{m['role']}>\n"), tokenizer.tokenize(m["content"] + "\n")
        ids += head + body
        answer += [loss_mode == "full"] * len(head) + [loss_mode == "full" or k in learned] * len(body)
    ids.append(tokenizer.eod)
    answer.append(True)
    return numpy.asarray(ids[:limit], dtype=numpy.int32), numpy.asarray(answer[:limit], dtype=bool)


class AmbiguousBoundary(ValueError):
    """The template/tokenizer leaves no exact token boundary for an assistant message."""


def _prefix_tokens(text: str, whole: str, ids: List[int], tokenizer, k: int) -> int:
    """How many of ``ids`` (the whole conversation's tokens) ``text`` covers; ValueError if ambiguous."""
    if not whole.startswith(text):
        raise AmbiguousBoundary(f"ambiguous assistant boundary at message {k}: the chat template renders the conversation "
                         "up to it differently from the whole conversation, so its tokens cannot be told apart")
    prefix = tokenizer.tokenize(text)
    if ids[:len(prefix)] != prefix:
        raise AmbiguousBoundary(f"ambiguous assistant boundary at message {k}: tokenizing the conversation up to it gives "
                         "other tokens than the whole conversation has there (tokens merge across the boundary)")
    return len(prefix)


def encode_with_template(conv: Conversation, template, tokenizer, loss_mode: str) -> Example:
    """The whole conversation's tokens (as ``apply_chat_template`` gives them) and its learned mask."""
    messages = [{key: v for key, v in m.items() if key != "train"} for m in conv.messages]
    whole = template.render(messages, conv.tools)
    ids = tokenizer.tokenize(whole)
    answer = numpy.full(len(ids), loss_mode == "full", dtype=bool)
    if loss_mode != "full":
        for k in _learned_messages(conv, loss_mode):
            start = _prefix_tokens(template.render(messages[:k], conv.tools, add_generation_prompt=True),
                                   whole, ids, tokenizer, k)
            end = _prefix_tokens(template.render(messages[:k + 1], conv.tools), whole, ids, tokenizer, k)
            answer[start:end] = True
    return numpy.asarray(ids, dtype=numpy.int32), answer


class Encoder:
    """Turns records of ``ds.data_format`` into examples for ``tokenizer`` (template resolved once)."""

    def __init__(self, ds, tokenizer) -> None:
        self.ds, self.tokenizer = ds, tokenizer
        self.template = templates.resolve(getattr(ds, "chat_template", None), tokenizer)
        self.loss_mode = getattr(ds, "loss_mode", "assistant")

    def describe(self) -> str:
        if self.ds.data_format == "input_output":
            return "format input_output: prompt and completion tokenized as they are (no chat template)"
        return f"format {self.ds.data_format}, loss_mode {self.loss_mode}; " + templates.describe(self.template)

    def encode(self, obj) -> Example:
        record = read_record(obj, self.ds)
        limit = self.ds.seq_length + 1
        if isinstance(record, Pair):
            ids, answer = _encode_pair(record, self.tokenizer, self.ds, limit)
            return ids, answer | (self.loss_mode == "full")  # last_turn = assistant: one answer only
        if not _learned_messages(record, self.loss_mode) and self.loss_mode != "full":
            raise ValueError("no assistant message to learn (loss_mode "
                             f"{self.loss_mode}; messages with train: false are not learned)")
        if self.template is None:
            return _encode_plugtron(record, self.tokenizer, self.loss_mode, limit)
        ids, answer = encode_with_template(record, self.template, self.tokenizer, self.loss_mode)
        return ids[:limit], answer[:limit]


class BuiltinFormat:
    """plugtron's own formats (registered in ``plugtron.data_formats`` like a package's): records read
    by ``sft_formats`` and rendered by an ``Encoder`` (the chat template resolved once per tokenizer)."""

    def __init__(self) -> None:
        self._encoders: dict = {}

    def _encoder(self, ds, tokenizer) -> "Encoder":
        key = (id(ds), id(tokenizer))
        if key not in self._encoders:
            self._encoders[key] = Encoder(ds, tokenizer)
        return self._encoders[key]

    def expects(self, ds) -> str:
        return expected_shape(ds)

    def check(self, record, ds) -> None:
        read_record(record, ds)

    def describe(self, ds, tokenizer) -> str:
        return self._encoder(ds, tokenizer).describe()

    def encode(self, record, ds, tokenizer, limit: int) -> Example:
        ids, answer = self._encoder(ds, tokenizer).encode(record)
        return ids[:limit], answer[:limit]


class InputOutput(BuiltinFormat):
    """{"input": prompt, "output": answer} per line (keys: dataset.input_key / output_key)."""


class Chat(BuiltinFormat):
    """{"messages": [{"role", "content"}, ...]} per line (OpenAI; tool_calls and the tool role with a
    template that has them); assistant turns are learned (dataset.loss_mode)."""


class ShareGPT(BuiltinFormat):
    """{"conversations": [{"from", "value"}, ...]} per line; role names mapped (dataset.role_map)."""


class Alpaca(BuiltinFormat):
    """{"instruction", "input" (optional), "output"} per line; the output is learned."""


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


def _source(path_or_source, ds):
    from plugtron.data.sft_sources import as_source

    return as_source(path_or_source, getattr(ds, "columns", None))


def check_file(path_or_source, ds) -> int:
    """Read every record of a split (a path or an ``sft_sources.Source``) without tokenizing (the shape
    errors come before any packing); returns the number of records."""
    source = _source(path_or_source, ds)
    fmt = data_format(ds)
    check = getattr(fmt, "check", None)  # a package's format may have no shape check of its own
    n = 0
    for where, obj in source.records():
        try:
            if check is not None:
                check(obj, ds)
        except ValueError as err:
            raise DataError(f"{where}: expected a JSON object with {fmt.expects(ds)} ({err})"
                            f"{_hint(obj, ds)}") from None
        n += 1
    if n == 0:
        raise DataError(f"{source}: empty (no examples)")
    return n


def iter_examples(path_or_source, ds, tokenizer, fmt=None) -> Iterator[Tuple[str, Example]]:
    """(where, example) for every record of a split in format ``fmt`` (``dataset.data_format``'s by
    default); ``where`` and the errors name ``file:line`` (or ``file row I``)."""
    fmt = fmt if fmt is not None else data_format(ds)
    limit = ds.seq_length + 1
    for where, obj in _source(path_or_source, ds).records():
        try:
            if not isinstance(obj, dict):
                raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
            yield where, fmt.encode(obj, ds, tokenizer, limit)
        except AmbiguousBoundary as err:
            raise DataError(f"{where}: {err}; not trained on (the prompt could leak into the loss): "
                            "fix the example, or set dataset.loss_mode: full to learn every token") from None
        except templates.TemplateError as err:
            raise DataError(f"{where}: {err}") from None
        except ValueError as err:
            raise DataError(f"{where}: expected a JSON object with {fmt.expects(ds)} ({err})"
                            f"{_hint(obj, ds)}") from None


def _hint(obj, ds) -> str:
    """The other data_format, if the keys say so."""
    return format_hint(obj if isinstance(obj, dict) else None, ds)


def load_examples(path_or_source, ds, tokenizer) -> Tuple[List[Example], int]:
    """Examples of one split (a path or an ``sft_sources.Source``), fit to ``seq_length + 1`` tokens; returns (examples, dropped),
    ``dropped`` counting examples whose answer was cut away entirely. A malformed line is an error
    naming ``file:line``: SFT sets are small and every example is meant to be learned."""
    source = _source(path_or_source, ds)
    fmt = data_format(ds)
    describe = getattr(fmt, "describe", None)
    log.info(f"{source}: " + (describe(ds, tokenizer) if describe is not None else f"format {ds.data_format}"))
    examples, dropped = [], 0
    for _, (ids, answer) in iter_examples(source, ds, tokenizer, fmt):
        if answer[1:].any():  # the first token is never predicted
            examples.append((ids, answer))
        else:
            dropped += 1
    if not examples:
        raise DataError(f"{source}: no usable examples ({dropped} lost their whole answer to seq_length "
                        f"{ds.seq_length})" if dropped else f"{source}: empty (no examples)")
    return examples, dropped
