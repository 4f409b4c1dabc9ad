"""Dolly-style records for plugtron: SFT (``dataset.data_format: dolly``) and pretraining text
(``dataset.data_format: dolly_text``).

A line is ``{"instruction": str, "context": str (may be empty or absent), "response": str}``. The prompt
is the instruction (and the context, when there is one) in a template; the answer is the response and
the end-of-document token. Only answer tokens are learned (the loss mask), as for plugtron's own
formats.
"""

import json

import attrs
import numpy

from plugtron.config.rules import OneOf, Range

PLUGTRON_API = ">=1,<2"


class Dolly:
    """{"instruction", "context", "response"} records in a prompt template; the response is learned."""

    @attrs.define(kw_only=True)
    class Options:
        template: str = attrs.field(
            default="### Instruction:\n{instruction}\n\n### Context:\n{context}\n\n### Response:\n",
            metadata={"help": "the prompt; {instruction} and {context} are filled in"})
        template_no_context: str = attrs.field(
            default="### Instruction:\n{instruction}\n\n### Response:\n",
            metadata={"help": "the prompt of a record whose context is empty"})
        truncate: str = attrs.field(default="prompt", metadata={"help": "what to cut first when too long: prompt or response"})

        RULES = {"truncate": OneOf(("prompt", "response"))}

    def __init__(self, options: "Dolly.Options"):
        self.options = options

    def expects(self, ds) -> str:
        return "'instruction' and 'response' strings (and optionally 'context')"

    def prompt(self, record) -> str:
        for key in ("instruction", "response"):
            if not isinstance(record.get(key), str):
                raise ValueError(f"expected a string under {key!r}, got {type(record.get(key)).__name__}")
        extra = record.get("context") or ""
        if not isinstance(extra, str):
            raise ValueError(f"'context' must be a string, got {type(extra).__name__}")
        template = self.options.template if extra else self.options.template_no_context
        return template.format(instruction=record["instruction"], context=extra)

    def encode(self, record, ds, tokenizer, limit: int):
        """(ids, answer mask) of at most ``limit`` tokens; ValueError names a malformed record."""
        prompt = tokenizer.tokenize(self.prompt(record))
        answer = tokenizer.tokenize(record["response"]) + [tokenizer.eod]
        excess = len(prompt) + len(answer) - limit
        if excess > 0 and self.options.truncate == "prompt":
            cut = min(excess, len(prompt))
            prompt, answer = prompt[cut:], answer[: len(answer) - (excess - cut)]
        elif excess > 0:
            cut = min(excess, len(answer))
            answer, prompt = answer[: len(answer) - cut], prompt[excess - cut:]
        return (numpy.asarray(prompt + answer, dtype=numpy.int32),
                numpy.asarray([False] * len(prompt) + [True] * len(answer), dtype=bool))


class DollyText:
    """Dolly records as pretraining text: each record one document, packed into full sequences.

    A pretraining format (``pretraining = True``): ``dataset.data_format: dolly_text`` on a
    pretraining dataset section, ``dataset.format_options.path`` the JSONL file. A record's text is
    its instruction, context and response, one paragraph each; documents are tokenized, joined with
    the end-of-document token and cut into ``sequence_length + 1`` token windows. Every
    ``valid_every``-th record goes to the validation split; there is no test split.
    """

    pretraining = True

    @attrs.define(kw_only=True)
    class Options:
        path: str = attrs.field(default="", metadata={"help": "a JSONL file of Dolly records"})
        valid_every: int = attrs.field(default=10, metadata={"help": "every Nth record is validation data"})

        RULES = {"valid_every": Range(lo=2)}

    def __init__(self, options: "DollyText.Options"):
        self.options = options

    def problems(self, ds) -> list:
        if not self.options.path:
            return ["dataset.format_options.path: required (a JSONL file of Dolly records)"]
        return []

    def documents(self):
        with open(self.options.path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    record = json.loads(line)
                    yield n, "\n\n".join(record.get(k) or "" for k in ("instruction", "context", "response")).strip()

    def build(self, cfg, tokenizer, sizes):
        length = cfg.dataset.sequence_length
        splits = ([], [])
        for n, text in self.documents():
            splits[n % self.options.valid_every == 0].extend(tokenizer.tokenize(text) + [tokenizer.eod])
        return (Windows(splits[0], length) if sizes[0] else None,
                Windows(splits[1], length) if sizes[1] else None, None)


class Windows:
    """``sequence_length`` windows of a token stream, as the samples of Megatron's ``GPTDataset``."""

    def __init__(self, tokens, length: int):
        self.tokens, self.length = numpy.asarray(tokens, dtype=numpy.int64), length

    def __len__(self) -> int:
        return max(len(self.tokens) - 1, 0) // self.length

    def __getitem__(self, i: int) -> dict:
        window = self.tokens[i * self.length: (i + 1) * self.length + 1]
        return {"tokens": window[:-1], "labels": window[1:], "loss_mask": numpy.ones(self.length, numpy.float32),
                "position_ids": numpy.arange(self.length, dtype=numpy.int64)}
