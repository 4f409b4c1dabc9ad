"""The one strict cattrs converter that turns YAML/CLI data into config objects and back.

Rules (each enforced by a hook below):
- unknown keys are errors, with a did-you-mean suggestion;
- ``int`` takes only ints that fit in 64 bits (``true`` or ``5.5`` are errors); ``float`` takes only
  finite numbers (``.nan``, ``.inf``, ``1e400`` and quoted numbers are errors); ``bool`` takes only
  booleans; ``str`` only strings;
- a list field takes only a list (a string is never split into characters, a mapping never becomes
  its keys); a mapping field takes only a mapping;
- every error is collected, then raised once as :class:`ConfigError` with ``path: expected X, got Y``;
- values are data only: a ``Callable`` field accepts a *name* from a fixed registry (activation
  functions), other code-valued fields (init methods, hooks, context managers) are not settable.
  Nothing in a config can import or run code.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import types
import typing
from collections.abc import Callable as AbcCallable
from collections.abc import Mapping
from collections.abc import Sequence as AbcSequence
from typing import Any, Dict, List, Literal, Tuple, Union

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.cols import list_structure_factory, mapping_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from plugtron.errors import ConfigError


class _Expected(Exception):
    """A leaf type mismatch: rendered as ``path: expected <what>, got <value>``."""

    def __init__(self, what: str, got: Any):
        super().__init__(what)
        self.what, self.got = what, got


class _NotSettable(Exception):
    """A field that holds code, named in input."""


def describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


# ---- named callables (the only way a config names code) ---------------------------------------
def gelu_tanh(x):
    """torch's tanh-approximated GELU: Hugging Face's ``gelu_pytorch_tanh`` (Gemma's activation), the
    same kernel, so logits match bit for bit (Megatron's ``fast_gelu`` orders the arithmetic differently)."""
    import torch.nn.functional as F

    return F.gelu(x, approximate="tanh")


def named_activations() -> Dict[str, Any]:
    """The activation functions a config may name (``activation_func: silu``), by name."""
    import torch.nn.functional as F
    from megatron.core import activations as act

    table = {"gelu": F.gelu, "silu": F.silu, "relu": F.relu, "tanh": __import__("torch").tanh, "gelu_tanh": gelu_tanh}
    for name in ("squared_relu", "quick_gelu", "fast_gelu"):
        if hasattr(act, name):
            table[name] = getattr(act, name)
    return table


NAMED_CALLABLE_FIELDS = {"activation_func": named_activations}


# ---- type classification ----------------------------------------------------------------------
def _is_union(t: Any) -> bool:
    return typing.get_origin(t) in (Union, types.UnionType)


def _is_torch_dtype(t: Any) -> bool:
    return isinstance(t, type) and t.__name__ == "dtype" and t.__module__ == "torch"


def _is_callable_type(t: Any) -> bool:
    return t is AbcCallable or typing.get_origin(t) is AbcCallable or t is typing.Callable


def _is_config_class(t: Any) -> bool:
    return isinstance(t, type) and (attrs.has(t) or dataclasses.is_dataclass(t))


def settable(t: Any) -> bool:
    """Can a value of type ``t`` be written as plain YAML data?"""
    if t in (int, float, bool, str, type(None), Any, list, dict, tuple) or t is typing.Any:
        return True
    origin = typing.get_origin(t)
    if origin is Literal:
        return True
    if _is_union(t):
        return any(settable(a) for a in typing.get_args(t) if a is not type(None))
    if origin in (list, List, tuple, Tuple, dict, Dict, typing.Sequence, typing.Mapping):
        return all(settable(a) for a in typing.get_args(t) if a is not Ellipsis)
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return True
    return _is_config_class(t) or _is_torch_dtype(t)


def _admits_none(t: Any) -> bool:
    return t is type(None) or t is Any or (_is_union(t) and type(None) in typing.get_args(t))


def _fields(cls: type) -> List[Tuple[str, Any, bool]]:
    """(name, resolved type, can be passed to __init__) for attrs and dataclass classes.

    A field declared ``x: int = None`` (Megatron has several) is read as ``Optional[int]``."""
    if attrs.has(cls):
        attrs.resolve_types(cls)
        raw = [(f.name, f.type, f.init, f.default) for f in attrs.fields(cls)]
    else:
        hints = typing.get_type_hints(cls)
        raw = [(f.name, hints.get(f.name, Any), f.init, f.default) for f in dataclasses.fields(cls)]
    return [(n, typing.Optional[t] if d is None and not _admits_none(t) else t, init) for n, t, init, d in raw]


def _raw_types(cls: type) -> List[Tuple[str, Any, bool]]:
    if attrs.has(cls):
        return [(f.name, f.type, f.init) for f in attrs.fields(cls)]
    hints = typing.get_type_hints(cls)
    return [(f.name, hints.get(f.name, Any), f.init) for f in dataclasses.fields(cls)]


def settable_fields(cls: type) -> List[str]:
    return [n for n, t, init in _fields(cls) if init and (settable(t) or n in NAMED_CALLABLE_FIELDS)]


# ---- the converter ----------------------------------------------------------------------------
def _build() -> cattrs.Converter:
    c = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    def s_int(v, _):
        if type(v) is int and INT64_MIN <= v <= INT64_MAX:
            return v
        raise _Expected("int (64-bit)" if type(v) is int else "int", v)

    def s_float(v, _):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            try:
                x = float(v)
            except OverflowError:  # an int too large for a float
                x = math.inf
            if math.isfinite(x):
                return x
            raise _Expected("a finite float", v)
        raise _Expected("float", v)

    def s_bool(v, _):
        if isinstance(v, bool):
            return v
        raise _Expected("bool (true or false)", v)

    def s_str(v, _):
        if isinstance(v, str):
            return v
        raise _Expected("str", v)

    c.register_structure_hook(int, s_int)
    c.register_structure_hook(float, s_float)
    c.register_structure_hook(bool, s_bool)
    c.register_structure_hook(str, s_str)
    c.register_structure_hook(typing.Any, lambda v, _: v)
    _register_container_hooks(c)

    def literal_hook(t):
        allowed = typing.get_args(t)

        def s(v, _):
            if v in allowed and type(v) in {type(a) for a in allowed}:
                return v
            what = "one of " + ", ".join(repr(a) for a in allowed)
            if isinstance(v, str):
                near = difflib.get_close_matches(v, [a for a in allowed if isinstance(a, str)], n=1)
                if near:
                    what += f" (did you mean {near[0]!r}?)"
            raise _Expected(what, v)

        return s

    c.register_structure_hook_factory(lambda t: typing.get_origin(t) is Literal, literal_hook)

    def union_hook(t):
        members = [a for a in typing.get_args(t) if settable(a)]
        non_none = [a for a in members if a is not type(None)]

        def s(v, _):
            if v is None and type(None) in members:
                return None
            if len(non_none) == 1:  # Optional[X]: delegate, so nested errors keep their paths
                return c.structure(v, non_none[0])
            if isinstance(v, Mapping):  # a mapping means a config-class member: the best-fitting one
                classes = [a for a in non_none if _is_config_class(a)]
                if classes:
                    best = max(classes, key=lambda k: len(set(v) & set(settable_fields(k))) - len(set(v) - set(settable_fields(k))))
                    return c.structure(v, best)
            for a in non_none:
                try:
                    return c.structure(v, a)
                except Exception:
                    continue
            names = [getattr(a, "__name__", str(a)) for a in members]
            raise _Expected(" or ".join(n if n != "NoneType" else "null" for n in names), v)

        return s

    c.register_structure_hook_factory(_is_union, union_hook)

    def enum_hook(t):
        def s(v, _):
            for m in t:
                if v == m.value or v == m.name or v is m:
                    return m
            raise _Expected("one of " + ", ".join(repr(m.name) for m in t), v)

        return s

    c.register_structure_hook_factory(lambda t: isinstance(t, type) and issubclass(t, enum.Enum), enum_hook)
    c.register_unstructure_hook_factory(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda t: lambda v: v.name
    )

    c.register_structure_hook_factory(_is_torch_dtype, lambda t: lambda v, _: to_dtype(v))
    c.register_unstructure_hook_factory(_is_torch_dtype, lambda t: dtype_name)

    def callable_structure(v, _):
        table = named_activations()
        if isinstance(v, str) and v in table:
            return table[v]
        if callable(v) and not isinstance(v, str):
            return v
        raise _Expected("one of " + ", ".join(repr(k) for k in table), v)

    def callable_unstructure(v):
        if v is None:
            return None
        for name, fn in named_activations().items():
            if fn is v:
                return name
        raise ConfigError([f"activation_func: {v!r} is not a named activation ({', '.join(named_activations())})"])

    c.register_structure_hook_factory(_is_callable_type, lambda t: callable_structure)
    c.register_unstructure_hook_factory(_is_callable_type, lambda t: callable_unstructure)

    def class_structure(cls):
        fields = _fields(cls)
        declared = {n: t for n, t, _ in _raw_types(cls)}
        overrides = {}
        for n, t, init in fields:
            if not init or not (settable(t) or n in NAMED_CALLABLE_FIELDS):
                overrides[n] = override(omit=True)
            elif t != declared[n]:  # `x: int = None` -> structure as Optional[int]
                overrides[n] = override(struct_hook=lambda v, _, t=t: c.structure(v, t))
            if attrs.has(cls) and "structure" in attrs.fields_dict(cls)[n].metadata:  # a per-field parser
                overrides[n] = override(struct_hook=lambda v, _, fn=attrs.fields_dict(cls)[n].metadata["structure"]: fn(v))
        fn = make_dict_structure_fn(cls, c, _cattrs_forbid_extra_keys=True,
                                    _cattrs_detailed_validation=True, **overrides)

        def s(v, _):
            if isinstance(v, cls):
                return v
            if not isinstance(v, Mapping):
                raise _Expected(f"a mapping of {cls.__name__} fields", v)
            return fn(v, cls)

        return s

    def class_unstructure(cls):
        fields = _fields(cls)
        omit = {n: override(omit=True) for n, t, init in fields
                if not init or not (settable(t) or n in NAMED_CALLABLE_FIELDS)}
        return make_dict_unstructure_fn(cls, c, **omit)

    c.register_structure_hook_factory(_is_config_class, class_structure)
    c.register_unstructure_hook_factory(_is_config_class, class_unstructure)
    _register_provider_hooks(c, class_structure, class_unstructure)
    # Values typed Any (plugin options, MixedPrecisionConfig dtypes) are dumped by runtime type.
    c.register_unstructure_hook_factory(_is_torch_dtype, lambda t: dtype_name)
    return c


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_LIST_ORIGINS = (list, List, typing.Sequence, typing.MutableSequence, AbcSequence)


def _is_list_type(t: Any) -> bool:
    return t is list or typing.get_origin(t) in _LIST_ORIGINS


def _is_tuple_type(t: Any) -> bool:
    return t is tuple or typing.get_origin(t) in (tuple, Tuple)


def _is_dict_type(t: Any) -> bool:
    return t is dict or typing.get_origin(t) in (dict, Dict, typing.Mapping, Mapping)


def _register_container_hooks(c: cattrs.Converter) -> None:
    """Lists take lists and mappings take mappings, nothing else: cattrs alone would iterate any
    iterable (``"abc"`` -> ``['a', 'b', 'c']``, ``{a: 1}`` -> ``['a']``)."""

    def list_hook(t):
        base = list_structure_factory(t if t is not list else List[Any], c)

        def s(v, _):
            if not isinstance(v, (list, tuple)):
                raise _Expected("a list" + (f" (write [{v}] for a single item)" if _is_scalar(v) else ""), v)
            return base(v, t)

        return s

    def tuple_hook(t):
        args = typing.get_args(t)

        def s(v, _):
            if not isinstance(v, (list, tuple)):
                raise _Expected("a list" + (f" of {len(args)} items" if args and Ellipsis not in args else ""), v)
            if not args or Ellipsis in args:
                return tuple(c.structure(x, args[0] if args else Any) for x in v)
            if len(v) != len(args):
                raise _Expected(f"a list of {len(args)} items", v)
            return tuple(c.structure(x, a) for x, a in zip(v, args))

        return s

    def dict_hook(t):
        base = mapping_structure_factory(t if t is not dict else Dict[Any, Any], c)

        def s(v, _):
            if not isinstance(v, Mapping):
                raise _Expected("a mapping", v)
            return base(v, t)

        return s

    c.register_structure_hook_factory(_is_list_type, list_hook)
    c.register_structure_hook_factory(_is_tuple_type, tuple_hook)
    c.register_structure_hook_factory(_is_dict_type, dict_hook)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float)) and len(str(v)) <= 40


def _is_provider(t: Any) -> bool:
    return isinstance(t, type) and getattr(t, "_plugtron_provider", False) is True


def _register_provider_hooks(c: cattrs.Converter, class_structure, class_unstructure) -> None:
    """The model section is polymorphic: ``provider: <name>`` picks a class registered in the
    entry-point group ``plugtron.providers`` (``plugtron.providers.registry``); values name classes, never modules. Registered
    after the generic class hooks, so these take precedence for provider classes."""
    structure_fns: Dict[type, Any] = {}
    unstructure_fns: Dict[type, Any] = {}

    def structure_as(target, data):
        if target not in structure_fns:
            structure_fns[target] = class_structure(target)
        return structure_fns[target](data, target)

    def unstructure_as(target, value):
        if target not in unstructure_fns:
            unstructure_fns[target] = class_unstructure(target)
        return unstructure_fns[target](value)

    def provider_structure(cls):
        def s(v, _):
            if isinstance(v, Mapping) and "provider" in v:
                from plugtron.providers.registry import provider_class

                target = provider_class(v["provider"])
                return structure_as(target, {k: x for k, x in v.items() if k != "provider"})
            return structure_as(cls, v)

        return s

    def provider_unstructure(cls):
        def u(v):
            from plugtron.providers.registry import provider_name

            name = provider_name(type(v)) if type(v) is not cls else None
            if name is None:  # the declared class, or an unregistered Python subclass
                return unstructure_as(cls, v)
            return {"provider": name, **unstructure_as(type(v), v)}

        return u

    c.register_structure_hook_factory(_is_provider, provider_structure)
    c.register_unstructure_hook_factory(_is_provider, provider_unstructure)


_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}


def to_dtype(v: Any) -> Any:
    """``"bf16"``/``"bfloat16"``/``torch.bfloat16`` -> ``torch.bfloat16``. Imports torch only for a
    string (so torch-free sections stay torch-free until a dtype is actually used)."""
    if v is None:
        return None
    if isinstance(v, str):
        if v.removeprefix("torch.") not in _DTYPES:
            raise _Expected("a dtype name (" + ", ".join(sorted(set(_DTYPES.values()))) + ")", v)
        import torch

        return getattr(torch, _DTYPES[v.removeprefix("torch.")])
    if _is_torch_dtype(type(v)):
        return v
    raise _Expected("a dtype name", v)


def dtype_name(v: Any) -> Any:
    return None if v is None else str(v).removeprefix("torch.")


_converter: cattrs.Converter | None = None


def converter() -> cattrs.Converter:
    global _converter
    if _converter is None:
        _converter = _build()
    return _converter


# ---- error rendering --------------------------------------------------------------------------
def _join(path: str, seg: str) -> str:
    if seg.startswith("["):
        return path + seg
    return f"{path}.{seg}" if path else seg


def collect_problems(exc: BaseException, path: str = "") -> List[str]:
    """Flatten cattrs' exception groups into ``path: message`` lines, in input order."""
    out: List[str] = []
    if isinstance(exc, ForbiddenExtraKeysError):
        known = settable_fields(exc.cl)
        every = [n for n, _, _ in _fields(exc.cl)]
        for key in sorted(exc.extra_fields):
            where = _join(path, key)
            if key in every:
                out.append(f"{where}: cannot be set from a config (it holds code or is derived)")
                continue
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            more = getattr(exc.cl, "unknown_key_hint", None)  # a section's own advice (PluginSettings)
            hint += more(where, key) if more is not None and not near else ""
            out.append(f"{where}: unknown key{hint}; {exc.cl.__name__} has no field '{key}'")
    elif isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            name = getattr(note, "name", None)
            index = getattr(note, "index", "?")
            seg = str(name) if name is not None else str(index) if isinstance(index, str) else f"[{index}]"
            out.extend(collect_problems(sub, _join(path, seg)))
        for sub in without:
            out.extend(collect_problems(sub, path))
    elif isinstance(exc, _Expected):
        out.append(f"{path or '<root>'}: expected {exc.what}, got {describe(exc.got)}")
    elif isinstance(exc, ConfigError):
        out.extend(f"{_join(path, p)}" if path else p for p in exc.problems)
    elif isinstance(exc, KeyError):
        out.append(f"{path}: required key {exc.args[0]!r} is missing")
    else:
        out.append(f"{path or '<root>'}: {exc}")
    return out


def structure(data: Any, cls: type, source: str = "config") -> Any:
    """Structure ``data`` into ``cls``; every problem is reported in one :class:`ConfigError`."""
    try:
        return converter().structure(data, cls)
    except ConfigError:
        raise
    except Exception as exc:  # cattrs groups, our leaves, and __init__/__post_init__ ValueErrors
        raise ConfigError(collect_problems(exc), source=source) from None


def unstructure(obj: Any) -> Any:
    return converter().unstructure(obj)
