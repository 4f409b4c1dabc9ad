"""Chat templates and a tiny BPE tokenizer carrying them, made on the spot for tests (no downloads).

Each template is written twice from one source: plain (as most real templates are: no markers) and
with ``{% generation %}`` around what an assistant turn produces, which ``transformers`` turns into
its own reference ``assistant_masks``. The styles follow the public prompt formats of Llama 3,
ChatML/Qwen (with tool calls and the tool role) and Mistral; the text is written here.
"""

from __future__ import annotations

import json
import os

SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start|>",
            "<|im_end|>", "[INST]", "[/INST]", "<s>", "</s>"]
# Words split off with their leading space; runs of newlines kept whole (as Llama 3's pattern does),
# so "\n\n" is one piece whether text follows it or not.
SPLIT = r"[\r\n]+| ?[^\s]+|\s+"


def _gen(text: str, marked: bool) -> str:
    return "{% generation %}" + text + "{% endgeneration %}" if marked else text


def llama3(marked: bool = False) -> str:
    reply = _gen("{{ m['content'] | trim }}{{ '<|eot_id|>' }}", marked)
    return ("{{ bos_token }}{% for m in messages %}"
            "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' }}"
            "{% if m['role'] == 'assistant' %}" + reply +
            "{% else %}{{ m['content'] | trim }}{{ '<|eot_id|>' }}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


def chatml(marked: bool = False) -> str:
    reply = _gen("{% if m['content'] %}{{ m['content'] }}{% endif %}"
                 "{% for c in m.get('tool_calls') or [] %}{{ '<tool_call>\n' + (c['function'] | tojson) + "
                 "'\n</tool_call>' }}{% endfor %}{{ '<|im_end|>\n' }}", marked)
    return ("{% if tools %}{{ '<|im_start|>system\nTools: ' + (tools | tojson) + '<|im_end|>\n' }}{% endif %}"
            "{% for m in messages %}"
            "{% if m['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}" + reply +
            "{% elif m['role'] == 'tool' %}{{ '<|im_start|>user\n<tool_response>\n' + m['content'] + "
            "'\n</tool_response><|im_end|>\n' }}"
            "{% else %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def mistral(marked: bool = False) -> str:
    reply = _gen("{{ m['content'] + eos_token }}", marked)
    return ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] + '\n\n' %}"
            "{% set rest = messages[1:] %}{% else %}{% set sys = '' %}{% set rest = messages %}{% endif %}"
            "{% for m in rest %}"
            "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
            "{{ raise_exception('roles must alternate user/assistant') }}{% endif %}"
            "{% if m['role'] == 'user' %}{{ '[INST] ' + (sys if loop.first else '') + m['content'] + ' [/INST]' }}"
            "{% else %}" + reply + "{% endif %}{% endfor %}")


TEMPLATES = {"llama3": llama3, "chatml": chatml, "mistral": mistral}
SPECIAL_MAP = {"llama3": ("<|begin_of_text|>", "<|eot_id|>"), "chatml": (None, "<|im_end|>"),
               "mistral": ("<s>", "</s>")}

TEXT = [
    "the cat sat on the mat and the dog sat on the log",
    "What is the capital of France? Paris is the capital of France.",
    "You are a helpful assistant. Answer briefly and politely.",
    "call the weather tool with the city name and read the result",
] * 20


def chat_tokenizer_dir(directory: str, style: str, template: str = None) -> str:
    """A byte-level BPE with the chat special tokens, saved as a Hugging Face directory whose
    ``tokenizer_config.json`` carries ``style``'s template (or ``template``) and special tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXT, trainer)
    os.makedirs(directory, exist_ok=True)
    tok.save(os.path.join(directory, "tokenizer.json"))
    bos, eos = SPECIAL_MAP[style]
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": eos,
              "chat_template": template if template is not None else TEMPLATES[style]()}
    if bos:
        config["bos_token"] = bos
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)
    return directory


CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris is the capital."},
    {"role": "user", "content": "And the dog?"},
    {"role": "assistant", "content": "the dog sat on the log"},
]
TOOL_CONVERSATION = {
    "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny in Paris."},
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
}
