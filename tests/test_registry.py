"""The registries (``plugtron.registry``): every kind is an entry-point group, plugtron's built-ins
are registered in its pyproject.toml like anyone's, names only (never modules) are picked, clashes
and broken or incompatible packages are one clear error when used, and listing never fails."""

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from _fake_dists import make_dist, on_path
from plugtron import registry
from plugtron.errors import ConfigError, PluginError

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_groups():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]


def test_every_kind_is_the_pyproject_group_and_nothing_else():
    groups = _pyproject_groups()
    for kind in registry.KINDS:
        declared = groups.get(kind.group, {})
        assert declared, f"{kind.group}: plugtron registers no built-in {kind.name}"
        installed = {n: e.ep.value for n, e in registry.entries(kind.name).items() if e.package.startswith("plugtron ")}
        assert installed == declared, f"{kind.group}: the installed metadata differs from pyproject (reinstall: pip install -e .)"


def test_the_fixed_tables_are_gone():
    """No second list of names beside the entry points (the tables each kind used to have)."""
    gone = {"providers/registry.py": r"^PROVIDERS\s*[:=]", "core/recipes/registry.py": r"^MODULES\s*=",
            "providers/hf/configs.py": r"^(FAMILIES|BY_NAME)\b", "core/data/tokenizers.py": r"^_KINDS\s*=",
            "core/config/data.py": r"Literal\[\s*\"(ByteLevelTokenizer|input_output)"}
    for rel, pattern in gone.items():
        assert not re.search(pattern, (ROOT / rel).read_text(), re.M), f"{rel} keeps a fixed table ({pattern})"
    from plugtron.config.rules import RULES, Registered

    for path, kind in {"optimizer.optimizer": "optimizer", "tokenizer.tokenizer_type": "tokenizer",
                       "dataset.data_format": "data_format"}.items():
        assert RULES[path] == Registered(kind)


def _without(monkeypatch, drop):
    """The installed entry points minus ``drop`` ({group: {names}}): as if pyproject lacked them."""
    real = metadata.entry_points

    def patched(group=None, **kw):
        if group is None:
            return real(**kw)
        return [ep for ep in real(group=group, **kw) if ep.name not in drop.get(group, ())]

    monkeypatch.setattr(metadata, "entry_points", patched)
    registry.refresh()


def test_an_entry_deleted_from_the_groups_disappears_everywhere(monkeypatch, capsys):
    from plugtron.cli import main
    from plugtron.config import load_config

    _without(monkeypatch, {"plugtron.providers": {"mamba2_130m"}, "plugtron.recipes": {"tiny_gpt2"},
                           "plugtron.optimizers": {"sgd"}, "plugtron.data_formats": {"chat", "mock"},
                           "plugtron.commands": {"plot"}, "plugtron.tokenizers": {"NullTokenizer"}})
    assert "mamba2_130m" not in registry.names("provider") and "sgd" not in registry.names("optimizer")
    with pytest.raises(ConfigError, match=r"model.provider: unknown provider 'mamba2_130m'"):
        load_config(None, ["model.provider=mamba2_130m"])
    with pytest.raises(ConfigError, match=r"optimizer.optimizer: expected a registered optimizer .*got str 'sgd'; registered: adam$"):
        load_config(None, ["optimizer.optimizer=sgd"]).validate()
    with pytest.raises(ConfigError, match=r"tokenizer.tokenizer_type: expected a registered tokenizer"):
        load_config(None, ["tokenizer.tokenizer_type=NullTokenizer", "tokenizer.vocab_size=300"]).validate()
    with pytest.raises(ConfigError, match=r"unknown recipe 'tiny_gpt2'"):
        load_config(None, [], recipe="tiny_gpt2")
    with pytest.raises(ConfigError, match=r"dataset.data_format: expected a registered data_format .*got str 'mock'"):
        load_config(None, ["dataset.data_format=mock"]).validate()  # a pretraining format, like the SFT ones
    with pytest.raises(ConfigError, match=r"dataset.mock: true picks the data format 'mock', which is not registered"):
        load_config(None, ["dataset.mock=true"]).validate()
    assert main(["recipes", "list"]) == 0
    assert "tiny_gpt2" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["plot", "x"])  # argparse: invalid choice
    assert "invalid choice: 'plot'" in capsys.readouterr().err
    assert main(["registry", "list"]) == 0
    out = capsys.readouterr().out
    assert not re.search(r"^(mamba2_130m|tiny_gpt2|sgd|chat|mock|plot|NullTokenizer) ", out, re.M)
    assert re.search(r"^adam +optimizer +plugtron ", out, re.M)


def test_a_name_is_picked_never_a_module():
    from plugtron.config import load_config

    with pytest.raises(ConfigError, match=r"unknown provider 'plugtron.providers.gpt:GPTModelProvider'"):
        load_config(None, ["model.provider=plugtron.providers.gpt:GPTModelProvider"])
    with pytest.raises(ConfigError, match=r"got str 'torch.optim:Adam'"):
        load_config(None, ["optimizer.optimizer=torch.optim:Adam"]).validate()


def test_did_you_mean_spans_the_kinds():
    assert registry.suggestion("lama3_8b", "provider") == " (did you mean 'llama3_8b'?)"
    assert registry.suggestion("adam", "provider") == " ('adam' is a registered optimizer, not a provider)"
    assert registry.suggestion("tiny_mixtrall", "optimizer") == " (did you mean the recipe 'tiny_mixtral'?)"
    # a loose likeness across kinds is noise ('nope' is 0.75 like the recipe 'none'): no suggestion
    assert registry.suggestion("nope", "data_format") == ""


FAKE_MODULE = '''"""A third party's entries."""
import sys
sys.modules.setdefault("fakepkg_imported", True)


class Provider:
    """Someone else's gpt."""


class Lion:
    """A fine optimizer."""
'''


def test_two_packages_one_name_is_an_error_naming_both_and_how_to_choose(tmp_path, monkeypatch, capsys):
    make_dist(tmp_path, "fake-models", "0.3", {"plugtron.providers": {"gpt": "fakepkg.mod:Provider"}},
              {"fakepkg/__init__.py": "", "fakepkg/mod.py": FAKE_MODULE})
    on_path(monkeypatch, tmp_path)
    with pytest.raises(PluginError) as err:
        registry.load("provider", "gpt")
    msg = str(err.value)
    assert "provider 'gpt' is registered by more than one package" in msg
    assert "plugtron 0.1.0 (plugtron.providers.gpt:GPTModelProvider)" in msg and "fake-models 0.3 (fakepkg.mod:Provider)" in msg
    assert "PLUGTRON_PREFER=provider.gpt=" in msg
    from plugtron.cli import main

    assert main(["registry", "list", "provider"]) == 0  # listing shows the clash, never fails
    assert re.search(r"^gpt +provider +.*\[CONFLICT: also ", capsys.readouterr().out, re.M)
    monkeypatch.setenv(registry.PREFER_ENV, "provider.gpt=fake-models")
    registry.refresh()
    assert registry.load("provider", "gpt").__doc__ == "Someone else's gpt."


def test_a_broken_entry_fails_only_when_used_and_names_its_package(tmp_path, monkeypatch, capsys):
    make_dist(tmp_path, "fake-broken", "1.2", {"plugtron.optimizers": {"lion": "fakepkg.broken:Lion"}},
              {"fakepkg/__init__.py": "", "fakepkg/broken.py": '"""Lion."""\nimport not_a_module_anywhere\n'})
    on_path(monkeypatch, tmp_path)
    from plugtron.cli import main

    assert main(["registry", "list", "optimizer"]) == 0
    assert re.search(r"^lion +optimizer +fake-broken 1.2 +Lion\.$", capsys.readouterr().out, re.M)
    with pytest.raises(PluginError, match=r"optimizer 'lion' \(fake-broken 1.2\) failed to import fakepkg.broken:Lion: "
                                          r"ModuleNotFoundError: No module named 'not_a_module_anywhere'"):
        registry.load("optimizer", "lion")
    from plugtron.config import load_config

    load_config(None, [])  # an unused broken entry changes nothing
    assert main(["config", "show", "optimizer.optimizer=lion", "optimizer.use_distributed_optimizer=false"]) == 2
    assert "fake-broken 1.2" in capsys.readouterr().err


def test_a_package_outside_the_plugin_api_range_is_refused_before_it_is_imported(tmp_path, monkeypatch):
    make_dist(tmp_path, "fake-future", "9.0", {"plugtron.optimizers": {"lion": "fakepkg.mod:Lion"},
                                               "plugtron.api": {"fake-future": "fakepkg:PLUGTRON_API"}},
              {"fakepkg/__init__.py": 'PLUGTRON_API = ">=2,<3"\n', "fakepkg/mod.py": FAKE_MODULE})
    on_path(monkeypatch, tmp_path)
    with pytest.raises(PluginError, match=r"package fake-future 9.0 supports plugtron plugin API >=2,<3, but this "
                                          r"plugtron \(.*\) has plugin API 1\.0\.0"):
        registry.load("optimizer", "lion")
    assert "fakepkg_imported" not in sys.modules  # refused before its entry module ran
    from plugtron.cli.registry_cmd import show_text

    assert "plugin API:   >=2,<3" in show_text("lion")


def test_a_package_inside_the_range_loads(tmp_path, monkeypatch):
    from plugtron import PLUGIN_API

    major = int(PLUGIN_API.split(".")[0])
    make_dist(tmp_path, "fake-now", "1.0", {"plugtron.optimizers": {"lion": "fakepkg.mod:Lion"},
                                            "plugtron.api": {"fake-now": "fakepkg:PLUGTRON_API"}},
              {"fakepkg/__init__.py": f'PLUGTRON_API = ">={major},<{major + 1}"\n', "fakepkg/mod.py": FAKE_MODULE})
    on_path(monkeypatch, tmp_path)
    assert registry.load("optimizer", "lion").__doc__ == "A fine optimizer."


def test_registry_show_tells_where_an_entry_comes_from(capsys):
    from plugtron.cli import main

    assert main(["registry", "show", "adam"]) == 0
    out = capsys.readouterr().out
    assert "adam  (optimizer, plugtron 0.1.0)" in out and "module:       plugtron.optimizers" in out
    assert re.search(r"file: +.*core/optimizers\.py", out) and "picked by:    optimizer.optimizer" in out
    assert main(["registry", "show", "adamm"]) == 2
    assert "(did you mean 'adam'?)" in capsys.readouterr().err


def test_listing_is_torch_free():
    import subprocess

    code = ("import sys\nfrom plugtron.cli import main\nmain(['registry', 'list'])\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('torch imported:', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 2) and "torch imported: False" in out.stdout, out.stderr[-2000:]
    assert "train " in out.stdout and "registry" in out.stdout


OPTIONS_MODULE = '''"""An optimizer with options."""
import attrs

from plugtron.config.rules import BETA


class Sharp:
    """Sharp: a test optimizer."""

    @attrs.define(kw_only=True)
    class Options:
        beta: float = attrs.field(default=0.9, metadata={"help": "smoothing"})
        steps: int = 3

        RULES = {"beta": BETA}

    @staticmethod
    def build(param_groups, optimizer_config, options):
        import torch

        return torch.optim.SGD(param_groups, lr=optimizer_config.lr)
'''


def test_an_entrys_options_are_typed_checked_filled_and_shown(tmp_path, monkeypatch, capsys):
    make_dist(tmp_path, "fake-sharp", "0.1", {"plugtron.optimizers": {"sharp": "fakepkg.sharp:Sharp"}},
              {"fakepkg/__init__.py": "", "fakepkg/sharp.py": OPTIONS_MODULE})
    on_path(monkeypatch, tmp_path)
    from plugtron.cli import main
    from plugtron.config import load_config

    base = ["optimizer.optimizer=sharp", "optimizer.use_distributed_optimizer=false"]
    cfg = load_config(None, base + ["optimizer_options.steps=5"]).validate()
    assert cfg.optimizer_options == {"beta": 0.9, "steps": 5}
    problems = {"optimizer_options.stepz=1": r"optimizer_options.stepz: unknown key \(did you mean 'steps'\?\)",
                "optimizer_options.steps=many": r"optimizer_options.steps: expected int, got str 'many'",
                "optimizer_options.beta=1.0": r"optimizer_options.beta: expected a value in \[0, 1\), got float 1.0"}
    for override, message in problems.items():
        with pytest.raises(ConfigError, match=message):
            load_config(None, base + [override]).validate()
    with pytest.raises(ConfigError, match=r"optimizer_options: the optimizer 'Adam' takes no options \(its settings are optimizer.\* fields\)"):
        load_config(None, ["optimizer_options.beta=0.5"]).validate()
    assert main(["config", "show", *base, "--section", "optimizer_options"]) == 0
    assert "beta: 0.9" in capsys.readouterr().out
    assert main(["registry", "show", "sharp"]) == 0
    out = capsys.readouterr().out
    assert "options (optimizer_options.KEY=VALUE):" in out and "beta: float = 0.9  smoothing" in out


def test_a_broken_command_package_never_breaks_the_command_line(tmp_path, monkeypatch, capsys):
    make_dist(tmp_path, "fake-cmds", "0.2", {"plugtron.commands": {"hello": "fakepkg.cmd:add_parser",
                                                                    "wrongname": "fakepkg.cmd:add_other",
                                                                    "gone": "fakepkg.missing:add_parser"}},
              {"fakepkg/__init__.py": "", "fakepkg/cmd.py": '''def add_parser(sub):
    p = sub.add_parser("hello", help="say hello")
    p.add_argument("who")
    p.set_defaults(handler=lambda ns: print(f"hello {ns.who}") or 0)


def add_other(sub):
    sub.add_parser("other")
'''})
    on_path(monkeypatch, tmp_path)
    from plugtron.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert re.search(r"hello +say hello", out) and "train" in out and "(unusable: command 'gone' (fake-cmds 0.2)" in out
    assert main(["hello", "you"]) == 0 and capsys.readouterr().out == "hello you\n"
    assert main(["gone"]) == 2
    assert "plugtron: error: command 'gone' (fake-cmds 0.2) failed to import fakepkg.missing:add_parser" in capsys.readouterr().err
    assert main(["wrongname"]) == 2
    assert "its add_parser added no parser named 'wrongname'" in capsys.readouterr().err
