"""Dolly-style SFT records for plugtron: ``dataset.data_format: dolly``.

A line is ``{"instruction": str, "context": str (may be empty or absent), "response": str}``. The prompt
is the instruction (and the context, when there is one) in a template; the answer is the response and
the end-of-document token. Only answer tokens are learned (the loss mask), as for plugtron's own
formats.
"""

import attrs
import numpy

from plugtron.config.rules import OneOf

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
