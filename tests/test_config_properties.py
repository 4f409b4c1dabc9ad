"""Property tests over the whole config schema: any value for any field ends in a ``ConfigError``
naming that field, or in a config that ``validate()`` accepts and that round-trips through YAML.
Never another exception, never a hang (hypothesis' deadline bounds each example).

The field list is derived from the attrs/dataclass classes (``ConfigContainer`` and every section,
Megatron's own classes included), so a new field is covered without touching this file.
"""

from __future__ import annotations

import math
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugtron.config import from_yaml, to_yaml
from plugtron.config.container import ConfigContainer, resolve_types
from plugtron.config.converter import NAMED_CALLABLE_FIELDS, _fields, _is_config_class, settable, structure, unstructure
from plugtron.config.loader import deep_merge, load_config, merge_sources
from plugtron.config.rules import RULES
from plugtron.errors import ConfigError

# Fast and bounded: the whole file runs in well under a minute on 2 busy cores.
FAST = settings(max_examples=150, deadline=10_000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _leaf_paths(cls, prefix="", depth=0):
    for name, t, init in _fields(cls):
        if not init or not (settable(t) or name in NAMED_CALLABLE_FIELDS):
            continue
        inner = [a for a in typing.get_args(t) if _is_config_class(a)] + ([t] if _is_config_class(t) else [])
        if inner and depth < 3:
            for a in inner:
                yield from _leaf_paths(a, f"{prefix}{name}.", depth + 1)
        else:
            yield prefix + name


resolve_types()
PATHS = sorted(set(_leaf_paths(ConfigContainer)) | {"plugins.demo.enabled", "plugins.demo.options"})
RECIPE = None


def _recipe():
    global RECIPE
    if RECIPE is None:
        from plugtron.recipes import tiny

        RECIPE = unstructure(tiny())
        structure(RECIPE, ConfigContainer).validate(world_size=1)  # first-use imports outside the deadline
    return RECIPE


@pytest.fixture(scope="module", autouse=True)
def _warm():
    _recipe()  # first-use imports (Megatron, model kinds, data) outside hypothesis' deadline


def _nest(path, value):
    tree = value
    for part in reversed(path.split(".")):
        tree = {part: tree}
    return tree


def deep(n):
    v = 0
    for _ in range(n):
        v = [v]
    return v


SCALARS = st.one_of(
    st.booleans(), st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**25]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -0.0, 1e-300, 1.5, -1.5]),
    st.text(max_size=20),
    st.sampled_from(["nan", "1e400", "yes", "010", "0x4", "5_0", "1:00", "/data/wiki_text_document", "adamw", "bogus"]),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=5),
    st.dictionaries(st.text(max_size=8), SCALARS, max_size=4),
    st.builds(deep, st.integers(min_value=5, max_value=60)),
    st.just(list(range(5_000))),
)


def _check(path, problems_text):
    """The field, or the section that holds it (``dataset.packed_sequence_specs: unknown key`` when
    the value picked the other dataset kind), is named at the start of a problem line."""
    assert _named(path, problems_text), f"{path} not named in:\n{problems_text}"


def _named(path, text):
    """The path, a section holding it (``peft: requires ...`` when a peft field switched the section
    on), or its last name."""
    parts = path.split(".")
    return any(n in text for n in [".".join(parts[:i]) for i in range(len(parts), 1, -1)] + [parts[-1]]) or \
        (len(parts) > 1 and f"{parts[0]}: " in text)


@FAST
@given(path=st.sampled_from(PATHS), value=VALUES)
def test_any_value_for_any_field_is_refused_by_name_or_fully_checked(path, value):
    data = merge_sources(_recipe(), _nest(path, value))
    try:
        cfg = structure(data, ConfigContainer, source="property")
        text = to_yaml(cfg)
        assert from_yaml(text) == cfg  # what validate() then checks is what a run_config.yaml reloads
        cfg.validate(world_size=1)
    except ConfigError as err:
        _check(path, str(err))
        return
    for rule_path, rule in RULES.items():  # accepted: every rule of the table holds
        node = cfg
        for part in rule_path.split("."):
            node = getattr(node, part, None)
        assert node is None or rule.ok(node), (rule_path, node)


def _yaml_text(value):
    from plugtron.config import yaml_io

    return yaml_io.dumps(value).strip() if isinstance(value, (list, dict)) else repr(value)


@FAST
@given(path=st.sampled_from(PATHS), value=VALUES)
def test_the_command_line_path_refuses_or_accepts_the_same_way(path, value):
    """Through ``key=value`` parsing (YAML 1.2 typing, depth and size limits) as the CLI does."""
    flow = value if not isinstance(value, str) else value.replace("\n", " ")
    item = f"{path}={_yaml_text(flow) if not isinstance(flow, str) else flow}"
    try:
        load_config(None, [item]).validate(world_size=1)
    except ConfigError as err:
        text = str(err)
        assert "override" in text or _named(path, text), text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e400])
def test_every_float_field_refuses_non_finite(value):
    float_paths = [p for p in PATHS if _declared_type(p) in (float, typing.Optional[float])]
    assert len(float_paths) > 40  # the walk found Megatron's fields too
    tree = {}
    for p in float_paths:
        tree = deep_merge(tree, _nest(p, value))
    if any(p.startswith("dataset.") for p in float_paths):
        tree = deep_merge(tree, {"dataset": {"dataset_root": "/d"}})  # the SFT kind holds the dataset's float fields
    with pytest.raises(ConfigError) as info:
        structure(merge_sources(_recipe(), tree), ConfigContainer)
    text = str(info.value)
    missing = [p for p in float_paths if p + ": expected a finite float" not in text]
    assert not missing, missing
    assert math.isinf(value) or math.isnan(value)


def _declared_type(path):
    """The declared type of ``path``; a section typed as a union of config classes (the dataset
    kinds) is searched in each of them."""
    classes = [ConfigContainer]
    t = None
    for part in path.split("."):
        t = next((ft for cls in classes for n, ft, _ in _fields(cls) if n == part), None)
        if t is None:
            return None
        classes = [a for a in typing.get_args(t) if _is_config_class(a)] + ([t] if _is_config_class(t) else [])
    return t


def _admits_anything(t):
    return t is typing.Any or (typing.get_origin(t) is typing.Union and typing.Any in typing.get_args(t))


def _any_mapping(t):
    """``Dict[str, Any]`` (an entry's options: their values are checked by its ``Options`` class in
    ``validate()``, tests/test_registry.py), possibly Optional."""
    args = [t] + [a for a in typing.get_args(t) if typing.get_origin(t) is typing.Union]
    return any(typing.get_origin(a) is dict and typing.get_args(a)[1:] == (typing.Any,) for a in args)


@pytest.mark.parametrize("bad", [{"x": {"y": 1}}, deep(6)], ids=["mapping", "deep-list"])
def test_every_typed_field_refuses_a_wrong_shape_by_name(bad):
    """Exhaustive, not sampled: the same wrong-shaped value in every typed field at once; each field
    is named. (A bare ``list`` field takes the deep list; Megatron's checks then refuse it.)"""
    paths = [p for p in PATHS if not _admits_anything(_declared_type(p)) and not p.startswith("plugins.")]
    tree = {}
    for p in paths:
        tree = deep_merge(tree, _nest(p, bad))  # both dataset kinds' fields at once
    with pytest.raises(ConfigError) as info:
        structure(merge_sources(_recipe(), tree), ConfigContainer)
    text = str(info.value)
    def named(p):  # the field, or the section holding it when the other dataset kind was picked
        parts = p.split(".")
        return (f"{p}." in text  # a mapping field names the entry: logger.mlflow_tags.x: expected str
                or any(f"{'.'.join(parts[:i])}{end}" in text for i in range(len(parts), 0, -1) for end in (":", "[")))

    missing = [p for p in paths if not named(p)
               and not (isinstance(bad, list) and list in (_declared_type(p),) + typing.get_args(_declared_type(p)))
               and not (isinstance(bad, dict) and _any_mapping(_declared_type(p)))]
    assert len(paths) > 300 and not missing, missing
