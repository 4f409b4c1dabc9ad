"""SFT record formats (``dataset.data_format``): one JSON object -> a prompt/completion pair or a
conversation (torch-free). Each reader raises ``ValueError`` saying what shape it expected; the
caller adds ``file:line``.

| format         | a record                                                                 |
|----------------|--------------------------------------------------------------------------|
| ``input_output`` | ``{"input": prompt, "output": completion}`` (keys: input_key, output_key) |
| ``chat``       | OpenAI messages: ``{"messages": [{"role", "content", "tool_calls"?, "train"?}], "tools"?}`` |
| ``sharegpt``   | ``{"conversations": [{"from", "value", "train"?}], "system"?, "tools"?}`` |
| ``alpaca``     | ``{"instruction", "input"?, "output", "system"?}``                       |

A conversation is ``(messages, tools)``: OpenAI-style messages (roles system/user/assistant/tool)
which the chat template renders; ``train: false`` on an assistant message keeps it out of the loss.
"""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Union

ROLES = ("system", "user", "assistant", "tool")
# ShareGPT speaker names -> roles; dataset.role_map adds to / overrides these.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "function_call": "assistant", "observation": "tool", "tool": "tool"}


class Pair:
    def __init__(self, prompt: str, completion: str) -> None:
        self.prompt, self.completion = prompt, completion


class Conversation:
    def __init__(self, messages: List[dict], tools: Optional[list] = None) -> None:
        self.messages, self.tools = messages, tools

    def trained(self, k: int) -> bool:
        return self.messages[k]["role"] == "assistant" and self.messages[k].get("train", True) is not False


def _string(obj: dict, key: str, optional: bool = False) -> str:
    value = obj.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected a string under {key!r}, got {type(value).__name__}")
    return value


def _tools(obj: dict) -> Optional[list]:
    tools = obj.get("tools")
    if isinstance(tools, str):  # ShareGPT sets often store the tool list as a JSON string
        try:
            tools = json.loads(tools)
        except ValueError:
            raise ValueError("'tools' is a string but not JSON") from None
    if tools is not None and not isinstance(tools, list):
        raise ValueError(f"'tools': expected a list of tool schemas, got {type(tools).__name__}")
    return tools or None


def _train_flag(m: dict, k: int) -> None:
    if "train" in m and not isinstance(m["train"], bool):
        raise ValueError(f"message {k}: 'train' must be true or false")


def read_input_output(obj: dict, ds) -> Pair:
    return Pair(_string(obj, ds.input_key), _string(obj, ds.output_key))


def read_chat(obj: dict, ds) -> Conversation:
    messages = obj.get(ds.messages_key)
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"expected a non-empty list under {ds.messages_key!r}")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ValueError(f"message {k}: expected {{'role': one of {'/'.join(ROLES)}, 'content': string}}")
        calls = m.get("tool_calls")
        if calls is not None and (m["role"] != "assistant" or not isinstance(calls, list)):
            raise ValueError(f"message {k}: 'tool_calls' must be a list on an assistant message")
        if not isinstance(m.get("content"), str) and not (calls and m.get("content") is None):
            raise ValueError(f"message {k}: 'content' must be a string (or null beside 'tool_calls')")
        _train_flag(m, k)
    return Conversation(messages, _tools(obj))


def read_sharegpt(obj: dict, ds) -> Conversation:
    turns = obj.get(ds.conversations_key)
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"expected a non-empty list under {ds.conversations_key!r} of {{'from', 'value'}} turns")
    names: Dict[str, str] = {**SHAREGPT_ROLES, **(ds.role_map or {})}
    messages = [{"role": "system", "content": _string(obj, "system")}] if obj.get("system") else []
    for k, t in enumerate(turns):
        if not isinstance(t, dict) or not isinstance(t.get("value"), str) or t.get("from") not in names:
            raise ValueError(f"turn {k}: expected {{'from': one of {'/'.join(sorted(names))}, 'value': string}} "
                             "(dataset.role_map adds speaker names)")
        _train_flag(t, k)
        m = {"role": names[t["from"]], "content": t["value"]}
        if "train" in t:
            m["train"] = t["train"]
        messages.append(m)
    return Conversation(messages, _tools(obj))


def read_alpaca(obj: dict, ds) -> Conversation:
    instruction, extra = _string(obj, ds.instruction_key), _string(obj, ds.input_key, optional=True)
    system = _string(obj, "system", optional=True)
    user = f"{instruction}\n{extra}" if extra else instruction
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": _string(obj, ds.output_key)}]
    return Conversation(messages)


READERS = {"input_output": read_input_output, "chat": read_chat, "sharegpt": read_sharegpt, "alpaca": read_alpaca}


def expected_shape(ds) -> str:
    """What one line of ``ds.data_format`` looks like, for error messages."""
    return {"input_output": f"{ds.input_key!r} and {ds.output_key!r} strings",
            "chat": f"{ds.messages_key!r}: a list of {{'role', 'content'}} messages",
            "sharegpt": f"{ds.conversations_key!r}: a list of {{'from', 'value'}} turns",
            "alpaca": f"{ds.instruction_key!r} and {ds.output_key!r} strings ({ds.input_key!r} optional)",
            }[ds.data_format]


def read_record(obj, ds) -> Union[Pair, Conversation]:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return READERS[ds.data_format](obj, ds)
