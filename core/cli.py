"""``plugtron`` command line.

    plugtron train [CONFIG.yaml] [key=value ...]        train (the tiny recipe with no arguments)
    plugtron config show [CONFIG.yaml] [key=value ...]  print the resolved, validated config
    plugtron plugins list [CONFIG.yaml] [key=value ...] installed plugins and whether enabled
    plugtron convert import-hf HF_DIR OUT_DIR           Hugging Face model -> plugtron checkpoint
    plugtron convert export-hf CKPT_DIR HF_DIR          plugtron checkpoint -> Hugging Face model
    plugtron data preprocess --input X.jsonl --output-prefix OUT [...]  JSONL -> indexed dataset

``--help`` and ``plugins list`` never import torch: they must answer instantly on a login node.
Bad input (config, overrides, data, plugins) prints one message naming what is wrong, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional, Sequence, Tuple


def _split_args(args: Sequence[str]) -> Tuple[Optional[str], List[str]]:
    """``[CONFIG.yaml] key=value ...``: the config file is the one argument without ``=``."""
    config, overrides = None, []
    for a in args:
        if "=" in a:
            overrides.append(a)
        elif config is None:
            config = a
        else:
            from plugtron.errors import ConfigError

            raise ConfigError([f"argument {a!r}: expected key=value (only one CONFIG.yaml may be given)"], source="command line")
    return config, overrides


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plugtron", description="Plugin-first LLM training on Megatron-Core.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(sp):
        sp.add_argument("args", nargs="*", metavar="[CONFIG.yaml] [key=value]",
                        help="a YAML config and/or dotted overrides such as train.train_iters=100")
        sp.add_argument("--recipe", default="tiny", help="base recipe under the YAML (default: tiny; 'none' for bare defaults)")

    with_config(sub.add_parser("train", help="train a model (no arguments: the tiny recipe on the bundled corpus)"))
    cfg = sub.add_parser("config", help="inspect configs").add_subparsers(dest="action", metavar="ACTION")
    with_config(cfg.add_parser("show", help="print the resolved, validated config as YAML"))
    plug = sub.add_parser("plugins", help="inspect plugins").add_subparsers(dest="action", metavar="ACTION")
    with_config(plug.add_parser("list", help="installed plugins: source, hooks, enabled"))
    from plugtron.providers.hf.commands import add_parser as add_convert_parser  # torch-free

    add_convert_parser(sub)
    data = sub.add_parser("data", help="prepare data").add_subparsers(dest="action", metavar="ACTION")
    from plugtron.data.preprocess_cli import add_arguments  # torch-free

    add_arguments(data.add_parser("preprocess", help="JSONL -> Megatron indexed dataset (.bin/.idx)"))
    return p


def _setup_logging() -> None:
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="[plugtron] %(message)s", stream=sys.stdout)
    for noisy in ("megatron", "megatron.core"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import warnings

    warnings.filterwarnings("ignore", message=".*Transformer Engine and Apex are not installed.*")
    warnings.filterwarnings("ignore", module="megatron.*")


def cmd_train(ns) -> int:
    from plugtron.config import load_config
    from plugtron.config.container import world_size_from_env

    config, overrides = _split_args(ns.args)
    world_size_from_env()  # a bad WORLD_SIZE, YAML or override is reported before torch is imported
    cfg = load_config(config, overrides, recipe=ns.recipe, repeats_ok=False)
    from plugtron.training import train

    train(cfg)
    return 0


def cmd_config_show(ns) -> int:
    from plugtron.config import load_config, to_yaml

    from plugtron.config.container import world_size_from_env

    config, overrides = _split_args(ns.args)
    world_size_from_env()
    cfg = load_config(config, overrides, recipe=ns.recipe, repeats_ok=False).validate()
    sys.stdout.write(to_yaml(cfg))
    return 0


def cmd_plugins_list(ns) -> int:
    from plugtron.plugin_list import describe_plugins

    config, overrides = _split_args(ns.args)
    rows = describe_plugins(config, overrides)
    if not rows:
        print("no plugins installed")
        return 0
    header = ("NAME", "SOURCE", "ENABLED BY", "ENABLED", "HOOKS")
    table = [header] + [(r["name"], r["source"], r["toggle"], "yes" if r["enabled"] else "no", ", ".join(r["hooks"])) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    return 0


def _convert(name: str):
    def run(ns) -> int:
        from plugtron.providers.hf import commands

        return getattr(commands, name)(ns)

    return run


def cmd_data_preprocess(ns) -> int:
    from plugtron.data.preprocess_cli import run

    return run(ns)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from plugtron.errors import PlugtronError

    parser = _parser()
    ns = parser.parse_args(argv)
    handlers = {
        ("train", None): cmd_train,
        ("config", "show"): cmd_config_show,
        ("plugins", "list"): cmd_plugins_list,
        ("convert", "import-hf"): _convert("cmd_import_hf"),
        ("convert", "export-hf"): _convert("cmd_export_hf"),
        ("data", "preprocess"): cmd_data_preprocess,
    }
    handler = handlers.get((ns.command, getattr(ns, "action", None)))
    if handler is None:
        parser.print_help()
        return 2
    _setup_logging()
    try:
        return handler(ns)
    except PlugtronError as err:
        print(f"plugtron: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("plugtron: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
