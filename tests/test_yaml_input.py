"""Regression tests for hostile or careless YAML and command-line input (issue 16): each ends in one
``ConfigError`` naming the place and the limit, quickly and in bounded memory. Torch-free."""

import time
import tracemalloc

import pytest

from plugtron.config import yaml_io
from plugtron.config.loader import load_data, parse_overrides
from plugtron.config.yaml_limits import MAX_BYTES, MAX_DEPTH, MAX_NODES
from plugtron.errors import ConfigError


def _refused(text, *, source="<string>"):
    with pytest.raises(ConfigError) as info:
        yaml_io.loads(text, source=source)
    return str(info.value)


# ---- YAML 1.2 core schema ---------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [
    ("010", 10),          # decimal in YAML 1.2 (1.1: octal 8)
    ("0o10", 8),          # 1.2 octal
    ("0x4", 4),           # 1.2 hex
    ("-7", -7),
    ("1:00", "1:00"),     # 1.1: sexagesimal 60
    ("5_0", "5_0"),       # 1.1: 50
    ("0b101", "0b101"),   # 1.1: binary 5
    ("2024-01-01", "2024-01-01"),  # 1.1: a date object
    ("yes", "yes"), ("on", "on"), ("True", True), ("FALSE", False),
    ("~", None), ("Null", None),
    ("1e-4", 1e-4), ("1.", 1.0), ("-.5", -0.5),
])
def test_yaml_12_core_schema_scalars(text, value):
    got = yaml_io.loads(f"a: {text}")["a"]
    assert got == value and type(got) is type(value)


def test_special_floats_are_read_then_refused_by_float_fields():
    import math

    assert math.isnan(yaml_io.loads("a: .nan")["a"]) and yaml_io.loads("a: -.inf")["a"] == float("-inf")
    assert yaml_io.loads("a: 1e400")["a"] == float("inf")  # refused by the converter (test_config_rules)


def test_duplicate_keys_in_yaml():
    text = _refused("train:\n  train_iters: 1\n  train_iters: 2\n")
    assert "<string>:3:3: duplicate key 'train_iters' (first at line 2)" in text


def test_merge_keys_still_work_and_do_not_count_as_duplicates():
    data = yaml_io.loads("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n")
    assert data["use"] == {"x": 1, "y": 3}


@pytest.mark.parametrize("text, shown", [("1: 2", "'1'"), ("null: 1", "'null'"), ("? [a]\n: 1", "a sequence"),
                                         ("true: 1", "'true'")])
def test_non_string_keys(text, shown):
    assert f"keys must be strings, got {shown}" in _refused(text)


def test_huge_integer_is_refused_with_its_line():
    assert "<string>:1:4: integer with 5000 digits is too long" in _refused("a: " + "9" * 5000)


def test_control_characters_are_invalid_yaml():
    assert "invalid YAML (character U+001B at position 3 is not allowed)" in _refused("a: \x1b")


# ---- bounds: nesting, alias bombs, size ---------------------------------------------------------
def test_deep_nesting_is_refused_not_a_recursion_error():
    assert f"nested deeper than {MAX_DEPTH} levels (the limit)" in _refused("a: " + "[" * 5000 + "]" * 5000)
    assert f"nested deeper than {MAX_DEPTH} levels (the limit)" in _refused("a: " + "{b: " * 2000 + "1" + "}" * 2000)


def test_deep_override_key_and_value():
    with pytest.raises(ConfigError, match=f"key nested deeper than {MAX_DEPTH} levels"):
        parse_overrides(["a" + ".a" * 3000 + "=1"])
    with pytest.raises(ConfigError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_overrides(["plugins.x.options.y=" + "[" * 3000 + "]" * 3000])


def _bomb(where):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "anchors:\n" + "".join(f"  {ln}\n" for ln in lines) + where


@pytest.mark.parametrize("where", ["plugins:\n  x:\n    options:\n      boom: *i\n", "dataset:\n  blend: *i\n"])
def test_alias_bomb_is_refused_fast_in_little_memory(where):
    tracemalloc.start()
    t0 = time.perf_counter()
    text = _refused(_bomb(where))
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert f"expands to more than {MAX_NODES} values (the limit; aliases count each time they are used)" in text
    assert elapsed < 2.0 and peak < 20 * 2**20, (elapsed, peak)


def test_recursive_alias():
    assert "recursive alias" in _refused("a: &a [1, *a]")


def test_many_keys_are_refused_at_the_value_limit():
    text = "plugins:\n  x:\n    options:\n" + "".join(f"      k{i}: {i}\n" for i in range(MAX_NODES + 10))
    assert len(text) < MAX_BYTES
    t0 = time.perf_counter()
    assert f"more than {MAX_NODES} values (the limit)" in _refused(text)
    assert time.perf_counter() - t0 < 20  # pure-Python parse of ~20k values; seconds on a busy machine


def test_big_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as f:  # 50 MB without writing 50 MB: a sparse file
        f.truncate(50 * 2**20)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=f"52428800 bytes is over the {MAX_BYTES}-byte limit for a config file"):
        load_data(str(path))
    assert time.perf_counter() - t0 < 1


# ---- files and paths ----------------------------------------------------------------------------
def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("train:\n  name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text \(byte 0xe9 at offset 18\)"):
        load_data(str(path))


def test_over_long_config_path():
    with pytest.raises(ConfigError, match=r"cannot read config file \(File name too long\)"):
        load_data("/tmp/" + "x" * 5000 + ".yaml")


def test_a_directory_or_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_data(str(tmp_path))


def test_top_level_must_be_a_mapping(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping of config sections, got list"):
        load_data(str(tmp_path / "list.yaml"))


# ---- the command line -------------------------------------------------------------------------
def test_same_key_twice_on_the_command_line():
    with pytest.raises(ConfigError) as info:
        parse_overrides(["optimizer.lr=1e-3", "optimizer.lr=3e-4", "dataset={blend: [a]}", "dataset.blend=[b]"])
    assert str(info.value) == (
        "command line: 2 errors\n"
        "  override 'optimizer.lr=3e-4': optimizer.lr is given twice on the command line\n"
        "  override 'dataset.blend=[b]': dataset.blend is given twice on the command line"
    )


def test_override_values_are_typed_by_yaml_12():
    assert parse_overrides(["a=010", "b=0x10", "c=1:00", "d=5_0", "e=yes"]) == {
        "a": 10, "b": 16, "c": "1:00", "d": "5_0", "e": "yes"}
