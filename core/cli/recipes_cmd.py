"""``plugtron recipes list|show`` and ``plugtron config show --section/--diff/--world-size``.

    plugtron recipes list                          one line per recipe: name, processes, what it is
    plugtron recipes show NAME [--world-size N]    the recipe's resolved config as YAML
    plugtron config show [CONFIG] [k=v] --recipe NAME [--section S] [--diff] [--world-size N]

``recipes list`` is torch-free (it reads the registry's tables); the others build the config.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional

from plugtron.cli.lazy_compile import deferred_torch_compile


def recipe_help() -> str:
    """The ``--recipe`` help text: every recipe name (torch-free)."""
    from plugtron.recipes import names

    return ("base recipe under the YAML and the overrides (default: tiny; 'none' for Megatron Bridge's bare "
            f"defaults; 'plugtron recipes list' describes them): {', '.join(names())}")


def add_parser(sub) -> None:
    rec = sub.add_parser("recipes", help="built-in recipes (Megatron Bridge's settings per model)")
    acts = rec.add_subparsers(dest="action", metavar="ACTION")
    acts.add_parser("list", help="every recipe, one line each")
    show = acts.add_parser("show", help="one recipe's resolved config as YAML")
    show.add_argument("name", help="the recipe's name (as in recipes list)")
    show.add_argument("--section", metavar="NAME", help="print only this top-level section (model, train, optimizer, ...)")
    show.add_argument("--diff", action="store_true",
                      help="print only the values this recipe sets differently from Megatron Bridge's bare defaults "
                           "(recipe 'none')")
    add_world_size(show)


def add_world_size(parser) -> None:
    parser.add_argument("--world-size", type=int, metavar="N",
                        help="validate for N processes (default: WORLD_SIZE, else the recipe's own layout for "
                             "recipes show, else 1)")


def add_show_options(parser) -> None:
    """``config show``'s own options (next to CONFIG.yaml, key=value and --recipe)."""
    parser.add_argument("--section", metavar="NAME", help="print only this top-level section (model, train, optimizer, ...)")
    parser.add_argument("--diff", action="store_true", help="print only the values that differ from the recipe's defaults")
    add_world_size(parser)


def _world_size(ns, default: int = 1) -> int:
    from plugtron.config.container import world_size_from_env
    from plugtron.errors import ConfigError

    if ns.world_size is not None:
        if ns.world_size < 1:
            raise ConfigError([f"--world-size: expected a positive integer, got {ns.world_size}"], source="command line")
        return ns.world_size
    return world_size_from_env() if "WORLD_SIZE" in os.environ else default


def cmd_list(ns) -> int:
    from plugtron.recipes import summaries, world_size

    rows = summaries()
    width = max(len(name) for name, _ in rows)
    for name, line in rows:
        procs = world_size(name)
        print(f"{name.ljust(width)}  {procs:>3} proc{'s' if procs > 1 else ' '}  {line}")
    return 0


def cmd_show(ns) -> int:
    """The recipe built and validated for its own world size; a recipe that needs user input before
    it validates (SFT data, a pretrained checkpoint) is printed unvalidated, with what to set first."""
    from plugtron.config import load_config, to_yaml
    from plugtron.errors import ConfigError
    from plugtron.recipes import get_recipe, world_size

    fn = get_recipe(ns.name)  # an unknown name fails here, before torch is imported
    _check_section(ns.section)
    procs = _world_size(ns, world_size(ns.name))
    with deferred_torch_compile():
        cfg = load_config(None, [], recipe=ns.name)
    header = [f"# recipe {ns.name} (plugtron.recipes.{fn.__name__}), validated for {procs} process(es)"]
    try:
        cfg.validate(procs)
    except ConfigError as err:
        header = [f"# recipe {ns.name} (plugtron.recipes.{fn.__name__}): set these before training:"]
        header += [f"#   {p}" for p in err.problems]
        cfg = load_config(None, [], recipe=ns.name)
    if ns.section is None and not ns.diff:
        sys.stdout.write("\n".join(header) + "\n" + to_yaml(cfg))
        return 0
    from plugtron.config import yaml_io
    from plugtron.config.converter import unstructure

    data = _select(unstructure(cfg), ns.section, _recipe_data("none", procs) if ns.diff else None)
    body = yaml_io.dumps(data) if data else "# no value differs from recipe 'none'\n"
    sys.stdout.write("\n".join(header) + "\n" + body)
    return 0


def _check_section(name: Optional[str]) -> None:
    """A typo in ``--section`` is reported before the config is built."""
    if name is None:
        return
    import attrs

    from plugtron.config.container import ConfigContainer
    from plugtron.errors import ConfigError

    sections = [f.name for f in attrs.fields(ConfigContainer) if f.init]
    if name not in sections:
        raise ConfigError([f"--section: unknown section {name!r}; sections: {', '.join(sections)}"],
                          source="command line")


def _select(data: Dict[str, Any], section: Optional[str], base: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """``data`` cut to the values that differ from ``base`` (when given), then to one section."""
    if base is not None:
        flat_base = _flatten(base)
        data = _nest({k: v for k, v in _flatten(data).items() if k not in flat_base or flat_base[k] != v})
    if section is not None:
        data = {section: data[section]} if section in data else {}
    return data


def _flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    out: Dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _nest(flat: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _recipe_data(recipe: str, procs: int) -> Dict[str, Any]:
    """The recipe's own resolved values (validated when it validates alone, so derived fields
    compare like with like)."""
    from plugtron.config import load_config
    from plugtron.config.converter import unstructure
    from plugtron.errors import ConfigError

    base = load_config(None, [], recipe=recipe)
    try:
        base.validate(procs)
    except ConfigError:
        base = load_config(None, [], recipe=recipe)
    return unstructure(base)


def show_config(cfg, ns, procs: int) -> str:
    """``config show``'s output for a validated ``cfg``: whole, one section, or the differences."""
    from plugtron.config import yaml_io
    from plugtron.config.converter import unstructure

    data = unstructure(cfg)
    if ns.diff:
        base = _flatten(_recipe_data(ns.recipe, procs))
        changed = {k: v for k, v in _flatten(data).items() if k not in base or base[k] != v}
        data = _nest(changed)
    if ns.section is not None:  # the name was checked by cmd_config_show
        data = {ns.section: data[ns.section]} if ns.section in data else {}
    if not data:
        return f"# no value differs from recipe {ns.recipe!r}\n"
    return yaml_io.dumps(data)


def cmd_config_show(ns, split_args) -> int:
    from plugtron.config import load_config

    config, overrides = split_args(ns.args)
    procs = _world_size(ns)
    if ns.section is not None:  # a typo in the section name is reported before the config is built
        import attrs

        from plugtron.config.container import ConfigContainer
        from plugtron.errors import ConfigError

        sections = [f.name for f in attrs.fields(ConfigContainer) if f.init]
        if ns.section not in sections:
            raise ConfigError([f"--section: unknown section {ns.section!r}; sections: {', '.join(sections)}"],
                              source="command line")
    from plugtron.config.loader import load_data
    from plugtron.recipes import get_recipe

    load_data(config, overrides, repeats_ok=False)  # YAML, override and recipe errors before torch is imported
    get_recipe(ns.recipe)
    with deferred_torch_compile():
        cfg = load_config(config, overrides, recipe=ns.recipe, repeats_ok=False)
    cfg.validate(procs)
    from plugtron.config import preflight

    preflight.check(cfg)  # files: tokenizer, data, pretrained checkpoint (train runs the same checks)
    from plugtron.plugin_checks import check_plugins  # the same plugin checks as train
    from plugtron.plugin_manager import discover

    check_plugins(cfg, discover())
    sys.stdout.write(show_config(cfg, ns, procs))
    return 0
