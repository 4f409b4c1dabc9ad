"""docs/plugins.md: its complete example is the example package's code, verbatim, under 50 lines,
and the README links it. (The example package's tests run in test_example_plugin.py.)"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugtron-example-plugin"
DOC = (ROOT / "docs" / "plugins.md").read_text()


def test_the_documented_plugin_is_the_tested_example_and_under_50_lines():
    plugin = (EXAMPLE / "src" / "plugtron_example_plugin" / "__init__.py").read_text()
    tests = (EXAMPLE / "tests" / "test_best_loss.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    assert plugin in blocks and tests in blocks
    lines = len(plugin.splitlines()) + len(tests.splitlines())
    assert lines < 50, lines
    assert f"A complete plugin, in {lines} lines" in DOC
    assert 'best_loss = "plugtron_example_plugin:BestLoss"' in (EXAMPLE / "pyproject.toml").read_text()


def test_readme_links_the_plugin_guide():
    assert "(docs/plugins.md)" in (ROOT / "README.md").read_text()


def test_every_hook_is_in_the_guide():
    from plugtron.plugin_manager import hook_names

    missing = [h for h in hook_names() if f"`{h}" not in DOC]
    assert not missing, missing


# The guide's example packages of the other kinds, shown verbatim (their tests: test_example_packages.py).
SHOWN = {"toml": ["plugtron-lion/pyproject.toml", "plugtron-stablelm/pyproject.toml"],
         "python": ["plugtron-lion/src/plugtron_lion/__init__.py", "plugtron-dolly/src/plugtron_dolly/__init__.py",
                    "plugtron-tokens/src/plugtron_tokens/__init__.py", "plugtron-stablelm/src/plugtron_stablelm/provider.py",
                    "plugtron-stablelm/src/plugtron_stablelm/hf.py", "plugtron-stablelm/src/plugtron_stablelm/recipes.py"]}


def test_the_guide_shows_every_kinds_example_package_verbatim():
    for lang, files in SHOWN.items():
        blocks = re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S)
        for rel in files:
            assert (ROOT / "examples" / rel).read_text() in blocks, f"docs/plugins.md does not show examples/{rel} as it is"


def test_the_guide_covers_every_kind():
    from plugtron import registry

    for kind in registry.KINDS:
        assert f"`{kind.group}`" in DOC, kind.group
