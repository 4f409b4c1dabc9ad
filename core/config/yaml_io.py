"""YAML in and out, with the YAML 1.2 core schema and bounded input.

Scalars (YAML 1.2 core schema, not PyYAML's YAML 1.1 defaults):
- booleans are only ``true``/``false`` (any case style), so ``yes``/``on`` stay strings;
- null is ``null``/``Null``/``NULL``/``~``/empty;
- integers are ``[-+]?[0-9]+`` (decimal, so ``010`` is 10, not octal 8), ``0o17`` (octal) and
  ``0x1F`` (hex); ``5_0`` and ``1:00`` are strings (YAML 1.1 read them as 50 and 60);
- floats are ``1.5``, ``1e-4``, ``.inf``, ``-.inf``, ``.nan``; dates stay strings.
Merge keys (``<<: *base``) are kept. Bounds (size, nesting, alias expansion) and key rules (string
keys, no duplicates) are in ``yaml_limits``; every problem becomes one ``ConfigError`` with its line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from plugtron.config import yaml_limits
from plugtron.config.yaml_limits import MAX_BYTES, LimitError, describe_mark
from plugtron.errors import ConfigError


class _Loader(yaml_limits.BoundedComposer, yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {}
for _tag, _regex, _first in (
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+0123456789.")),
    ("merge", r"^(?:<<)$", ["<"]),
):
    _Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_regex), _first)


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    try:
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text)
    except ValueError:  # Python refuses decimal strings over 4300 digits
        raise LimitError(f"integer with {len(text)} digits is too long", node.start_mark) from None


def _construct_float(loader, node):
    text = loader.construct_scalar(node)
    special = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}
    return special[text.lower()] if text.lower() in special else float(text)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def loads(text: str, source: str = "<string>") -> Any:
    if len(text) > MAX_BYTES:
        raise ConfigError([f"{source}: {len(text)} characters is over the {MAX_BYTES}-byte limit for a config"],
                          source=source)
    loader = None
    try:
        loader = _Loader(text)  # the reader refuses control characters here already
        node = loader.get_single_node()
        if node is None:
            return None
        yaml_limits.check_graph(node)
        return loader.construct_document(node)
    except LimitError as exc:
        raise ConfigError([f"{describe_mark(source, exc.mark)}: {exc.message}"], source=source) from None
    except yaml.reader.ReaderError as exc:
        raise ConfigError([f"{source}: invalid YAML (character U+{exc.character:04X} at position {exc.position} "
                           "is not allowed)"], source=source) from None
    except yaml.YAMLError as exc:
        where = describe_mark(source, getattr(exc, "problem_mark", None))
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: invalid YAML ({problem})"], source=source) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_text(path: str | Path, what: str = "config file") -> str:
    """A UTF-8 text file of at most ``MAX_BYTES``, or one ``ConfigError`` saying why not."""
    p = Path(path)
    try:
        if not p.is_file():
            raise ConfigError([f"{p}: no such {what}"], source=str(p))
        size = os.path.getsize(p)
        if size > MAX_BYTES:
            raise ConfigError([f"{p}: {size} bytes is over the {MAX_BYTES}-byte limit for a {what}"], source=str(p))
        raw = p.read_bytes()
    except OSError as err:  # e.g. a path longer than the OS allows, no permission
        shown = str(p) if len(str(p)) <= 200 else str(p)[:100] + "..." + str(p)[-60:]
        raise ConfigError([f"{shown}: cannot read {what} ({err.strerror or err})"], source="command line") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError([f"{p}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})"],
                          source=str(p)) from None


def load_file(path: str | Path) -> Any:
    data = loads(read_text(path), source=str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping of config sections, got {type(data).__name__}"], source=str(path))
    return data


def parse_scalar(text: str) -> Any:
    """A command-line value, typed exactly as the same text in a YAML file would be."""
    return loads(text, source="command line") if text.strip() else ""


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


class _Dumper(yaml.SafeDumper):
    pass


def dumps(data: Any) -> str:
    return yaml.dump(_plain(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def _needs_quotes(text: str) -> bool:
    try:
        return loads(text) != text or not isinstance(loads(text), str)
    except ConfigError:
        return True


def _present_str(dumper, data):
    style = "'" if data == "" or _needs_quotes(data) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _present_str)
