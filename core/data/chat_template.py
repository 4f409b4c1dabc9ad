"""Chat templates: the Jinja a Hugging Face tokenizer carries (``chat_template``), rendered the way
``transformers``' ``apply_chat_template`` renders it, so SFT trains on the prompt format a model is
served with (torch-free; ``jinja2`` only).

Which template (``dataset.chat_template``):

- unset: the tokenizer's own template (``tokenizer_config.json``'s ``chat_template`` or a
  ``chat_template.jinja`` next to it); a tokenizer without one falls back to ``plugtron``;
- ``plugtron``: plugtron's own per-message format (``<role>\\n`` + ``content\\n`` + EOD);
- ``chatml``: the ChatML template below (``<|im_start|>role\\n...<|im_end|>\\n``);
- a path to a ``.jinja`` file, or Jinja text itself (anything containing ``{%`` or ``{{``).

The environment matches the one ``transformers`` compiles templates in: a sandbox with
``trim_blocks``/``lstrip_blocks``, loop controls, ``tojson`` without ASCII escaping, and the globals
``raise_exception`` and ``strftime_now``. ``{% generation %}`` blocks are accepted and rendered as
plain text: plugtron finds assistant tokens by rendering prefixes (see ``sft_examples``), never by
those markers, which most templates lack.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from datetime import datetime
from typing import Dict, List, Optional

from plugtron.errors import DataError

PLUGTRON = "plugtron"

# ChatML (Qwen-style without the default system prompt); tool calls as Qwen writes them.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] %}{{ message['content'] }}{% endif %}"
    "{% for call in message.get('tool_calls') or [] %}"
    "{{ '<tool_call>\n' + (call['function'] | tojson) + '\n</tool_call>' }}"
    "{% endfor %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
BUILTIN = {"chatml": CHATML}
# Keys of tokenizer_config.json passed to templates, as transformers passes its special tokens map.
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class TemplateError(ValueError):
    """A template failed on one example (its ``raise_exception`` or a Jinja error)."""


def _raise(message: str):
    raise TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@functools.lru_cache(maxsize=None)
def _environment():
    try:
        import jinja2
    except ImportError:
        raise DataError("chat templates need the 'jinja2' package; install the optional extra: "
                        "pip install 'plugtron[tokenizers]'") from None
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationBlock(Extension):
        """``{% generation %}...{% endgeneration %}``: the body, unchanged."""

        tags = {"generation"}

        def parse(self, parser):
            next(parser.stream)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


@functools.lru_cache(maxsize=32)
def _compile(text: str):
    env = _environment()  # first: a missing jinja2 is reported there
    import jinja2

    try:
        return env.from_string(text)
    except jinja2.TemplateSyntaxError as err:
        raise DataError(f"dataset.chat_template: not a valid Jinja template (line {err.lineno}: {err.message})") from None


class ChatTemplate:
    """One template plus the tokenizer's special tokens it may refer to (``bos_token``, ...)."""

    def __init__(self, name: str, text: str, special_tokens: Optional[Dict[str, str]] = None) -> None:
        self.name, self.text = name, text
        self.special_tokens = dict(special_tokens or {})
        self._template = _compile(text)
        self.digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:12]

    def render(self, messages: List[dict], tools: Optional[list] = None, add_generation_prompt: bool = False) -> str:
        import jinja2

        try:
            return self._template.render(messages=messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                         **self.special_tokens)
        except TemplateError:
            raise
        except jinja2.TemplateError as err:
            raise TemplateError(f"chat template {self.name}: {err}") from None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise DataError(f"dataset.chat_template: cannot read {path} ({err.strerror})") from None


def resolve(setting: Optional[str], tokenizer) -> Optional[ChatTemplate]:
    """The template ``dataset.chat_template`` names for ``tokenizer``; ``None`` means plugtron's own
    per-message format."""
    special = getattr(tokenizer, "special_tokens", {}) or {}
    if setting is None:
        own = getattr(tokenizer, "chat_template", None)
        return ChatTemplate("of the tokenizer", own, special) if own else None
    if setting == PLUGTRON:
        return None
    if setting in BUILTIN:
        return ChatTemplate(setting, BUILTIN[setting], special)
    if "{{" in setting or "{%" in setting:
        return ChatTemplate("from dataset.chat_template", setting, special)
    path = os.path.abspath(os.path.expanduser(setting))
    if os.path.isfile(path):
        return ChatTemplate(path, _read(path), special)
    raise DataError(f"dataset.chat_template: {setting!r} is neither a built-in ({', '.join([PLUGTRON, *BUILTIN])}), "
                    "an existing template file, nor Jinja text")


def describe(template: Optional[ChatTemplate]) -> str:
    """One log line saying how conversations are rendered."""
    if template is None:
        return "chat format: plugtron's own (<role>\\n content\\n per message; no chat template in the tokenizer)"
    return f"chat format: the chat template {template.name} (md5 {template.digest})"
