"""``plugtron plugins show NAME``: the plugin's own docstring (never one a base class lends it) and,
for a built-in, the core fields that configure it, with types, defaults and current values."""

import abc

import pytest

from plugtron import cli
from plugtron.config import builtin_toggles
from plugtron.config.builtin_fields import EXTRA, describe, fields_of

BUILTINS = sorted({name: path for path, name in builtin_toggles()}.items())


@pytest.mark.parametrize("name,toggle", BUILTINS)
def test_every_builtin_shows_its_own_doc_and_its_core_fields(name, toggle, capsys):
    assert cli.main(["plugins", "show", name]) == 0
    out = capsys.readouterr().out
    assert abc.ABC.__doc__.splitlines()[0] not in out and "(no docstring)" not in out
    assert "configured by these core fields" in out and f"  {toggle}: " in out
    for path in fields_of(name, toggle):
        kind, default = describe(path)
        assert f"  {path}: {kind} = {default}" in out, (path, out)


def test_manual_gc_shows_its_module_doc_and_current_values(capsys):
    assert cli.main(["plugins", "show", "manual_gc", "train.manual_gc=true", "train.manual_gc_interval=5"]) == 0
    out = capsys.readouterr().out
    assert "Manual garbage collection (former NeMo ``GarbageCollectionCallback``)" in out
    assert "Helper class that provides a standard way" not in out  # abc.ABC's, through ReleaseAtEnd
    assert "train.manual_gc_interval: int = 0" in out and "now: 5" in out
    assert "options:          none (a built-in: set the core fields above)" in out


def test_section_fields_show_the_sections_values(capsys):
    assert cli.main(["plugins", "show", "moe_token_drop", "moe_token_drop.moe_expert_capacity_factor=0.5"]) == 0
    out = capsys.readouterr().out
    assert "moe_token_drop.moe_expert_capacity_factor: float = 1.0" in out and "now: 0.5" in out
    assert cli.main(["plugins", "show", "deepep"]) == 0
    assert "deepep.backend: str = 'deepep'" in capsys.readouterr().out


def test_every_listed_field_exists():
    for name, paths in EXTRA.items():
        for path in paths:
            describe(path)  # raises KeyError for a path that is no config field
