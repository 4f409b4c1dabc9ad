"""YAML in and out, with YAML 1.2 scalars: only ``true``/``false`` are booleans (so ``yes`` stays
the string "yes" and is rejected where an int or bool is expected) and ``1e-4`` is a float."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from plugtron.errors import ConfigError


class _Loader(yaml.SafeLoader):
    pass


# Drop YAML 1.1's implicit resolvers for bool and float, then add YAML 1.2 core-schema ones.
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def _int_or_float(loader, node):
    text = loader.construct_scalar(node)
    return float(text)


_Loader.add_constructor("tag:yaml.org,2002:float", _int_or_float)


def loads(text: str, source: str = "<string>") -> Any:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: invalid YAML ({problem})"], source=source) from None
    return data


def load_file(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise ConfigError([f"{p}: no such config file"], source=str(p))
    data = loads(p.read_text(encoding="utf-8"), source=str(p))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{p}: expected a mapping of config sections, got {type(data).__name__}"], source=str(p))
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
