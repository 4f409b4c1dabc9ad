"""``plugtron`` command line.

    plugtron train [CONFIG.yaml] [key=value ...]        train (the tiny recipe with no arguments)
    plugtron config show [CONFIG.yaml] [key=value ...]  print the resolved, validated config
             [--recipe NAME] [--section S] [--diff] [--world-size N]
    plugtron recipes list | show NAME                   built-in recipes (Megatron Bridge's settings)
    plugtron plugins list [CONFIG.yaml] [key=value ...] installed plugins and whether enabled
    plugtron plugins show NAME [CONFIG.yaml] [...]      one plugin: docs, options, hooks, enabled
    plugtron plugins new NAME [--kind K] [-o DIR]       a package skeleton (plugin, provider, optimizer, ...)
    plugtron registry list [KIND] | show NAME            everything registered: providers, recipes, ...
    plugtron --traceback ... / --trace-hooks[=all] ...   full traceback on errors / log every hook call
    plugtron --version                                   the installed plugtron version
    plugtron convert import-hf HF_DIR OUT_DIR           Hugging Face model -> plugtron checkpoint
    plugtron convert export-hf CKPT_DIR HF_DIR          plugtron checkpoint -> Hugging Face model
    plugtron peft merge ADAPTER_CKPT OUT_DIR            adapters folded into their base (a checkpoint)
    plugtron peft export-hf ADAPTER_CKPT OUT_DIR        adapters in Hugging Face PEFT's layout
    plugtron data preprocess --input X.jsonl --output-prefix OUT [...]  JSONL -> indexed dataset
    plugtron data inspect CONFIG [--split train] [--n 3]     SFT examples with learned tokens marked
    plugtron migrate nemo2 SCRIPT.py [-o plugtron.yaml]  NeMo 2.0 script -> plugtron config (static)
    plugtron migrate callback FILE.py [--class NAME]     a Lightning Callback -> a plugtron plugin package
    plugtron generate CKPT --prompt TEXT [...]           text from a checkpoint's model (greedy or sampled)
    plugtron plot RUN_DIR [RUN_DIR ...] [-o OUT.png]    loss and throughput of runs' metrics.jsonl as a PNG

Commands are the entry-point group ``plugtron.commands`` (``builtin_commands`` has plugtron's own).
``--help`` and ``plugins list`` never import torch: they must answer instantly on a login node.
Bad input (config, overrides, data, plugins) prints one message naming what is wrong, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional, Sequence, Tuple

TRACEBACK_ENV = "PLUGTRON_TRACEBACK"


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


def _version() -> str:
    """The installed distribution's version: package metadata only, so no torch import."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("plugtron")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plugtron", description="Plugin-first LLM training on Megatron-Core.")
    p.add_argument("--version", action="version", version=f"plugtron {_version()}",
                   help="print plugtron's version (from the installed package's metadata) and exit")
    p.add_argument("--verbose", action="store_true",
                   help="show every warning (also Megatron's and torch's that plugtron hides) and debug logs")
    p.add_argument("--traceback", action="store_true",
                   help=f"on an error, print the full Python traceback too (or set {TRACEBACK_ENV}=1)")
    p.add_argument("--trace-hooks", nargs="?", const="1", choices=["1", "all"], metavar="all",
                   help="log every hook call: plugins called in order and duration; rank 0, or every rank "
                        "with 'all' (or set PLUGTRON_TRACE_HOOKS=1|all)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    add_commands(sub)
    return p


def add_commands(sub) -> None:
    """Every registered command (``plugtron.commands``; plugtron's own are registered the same way).
    A command that cannot be added still appears, and running it gives its one error: ``--help``
    never fails because of one package."""
    from plugtron import registry
    from plugtron.errors import PluginError, PlugtronError

    for name in registry.names("command"):
        try:
            registry.load("command", name, f"plugtron {name}")(sub)
            if name not in sub.choices:
                raise PluginError(f"command {name!r} ({registry.entries('command')[name].package}): its add_parser "
                                  f"added no parser named {name!r}")
            problem = None
        except PlugtronError as exc:
            problem = exc
        except Exception as exc:  # the package's own bug while building its parser
            problem = PluginError(f"command {name!r} ({registry.entries('command')[name].package}): add_parser "
                                  f"raised {type(exc).__name__}: {exc}")
        if problem is not None:
            parser = sub.choices.get(name) or sub.add_parser(name, help=f"(unusable: {str(problem).splitlines()[0]})")
            parser.set_defaults(handler=_raiser(problem))


def _raiser(problem: Exception):
    def run(ns) -> int:
        raise problem

    return run


def _setup_logging(verbose: bool = False) -> None:
    """plugtron's log lines on rank 0, on standard error (standard output carries only a command's
    result, e.g. ``config show > resolved.yaml``); Megatron's logs at WARNING and the warnings no user
    can act on hidden (``plugtron.platform.quiet``), unless ``verbose``: then everything, plugtron at DEBUG."""
    rank = int(os.environ.get("RANK", "0"))
    level = logging.INFO if rank == 0 else logging.WARNING
    logging.basicConfig(level=logging.DEBUG if verbose else level, format="[plugtron] %(message)s", stream=sys.stderr)
    for noisy in ("megatron", "megatron.core"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    from plugtron.platform import quiet  # torch-free

    if not verbose:
        quiet.install()


def apply_logging_level(cfg) -> None:
    """``logger.logging_level`` 10 (DEBUG) turns verbose mode on once the config is read."""
    if cfg.logger.logging_level <= logging.DEBUG:
        from plugtron.platform import quiet

        quiet.uninstall()
        logging.getLogger().setLevel(logging.DEBUG)
        for noisy in ("megatron", "megatron.core"):
            logging.getLogger(noisy).setLevel(logging.INFO)


def cmd_train(ns) -> int:
    from plugtron.config import load_config
    from plugtron.config.container import world_size_from_env

    config, overrides = _split_args(ns.args)
    world_size_from_env()  # a bad WORLD_SIZE, YAML or override is reported before torch is imported
    cfg = load_config(config, overrides, recipe=ns.recipe, repeats_ok=False)
    apply_logging_level(cfg)
    from plugtron.training import train
    from plugtron.training.run_dir import apply_default

    apply_default(cfg, ns.recipe, config)  # only the command line: the run leaves a checkpoint to use
    train(cfg)
    return 0


def cmd_config_show(ns) -> int:
    from plugtron.cli.recipes_cmd import cmd_config_show as show

    return show(ns, _split_args)


def cmd_plugins_list(ns) -> int:
    from plugtron.cli.plugin_list import describe_plugins

    config, overrides = _split_args(ns.args)
    rows, error = describe_plugins(config, overrides, ns.recipe)
    if not rows:
        print("no plugins installed")
    header = ("NAME", "SOURCE", "ENABLED BY", "ENABLED", "HOOKS")
    table = [header] + [(r["name"], r["source"], r["toggle"], "blocked" if r["blocked"] else "yes" if r["enabled"] else "no",
                         ", ".join(r["hooks"])) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table if rows else []:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    if error is not None:  # what train would refuse: the same message and exit status
        raise error
    return 0


def cmd_plugins_show(ns) -> int:
    from plugtron.cli.plugin_list import show_plugin

    config, overrides = _split_args(ns.args)
    sys.stdout.write(show_plugin(ns.name, config, overrides, ns.recipe))
    return 0


def cmd_data_inspect(ns) -> int:
    from plugtron.data.sft_inspect import run

    return run(ns, _split_args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from plugtron.errors import PlugtronError

    parser = _parser()
    # `train CONFIG --recipe NAME key=value`: argparse stops the positional list at an option, so
    # what follows it comes back unparsed; it belongs to the same CONFIG/key=value list.
    ns, rest = parser.parse_known_args(argv)
    if rest and (not hasattr(ns, "args") or any(a.startswith("-") for a in rest)):
        parser.parse_args(argv)  # the usual "unrecognized arguments" message and exit status 2
    if rest:
        ns.args = list(ns.args) + rest
    handler = getattr(ns, "handler", None)  # set by the command's parser (plugtron.commands)
    if handler is None:
        parser.print_help()
        return 2
    _setup_logging(verbose=ns.verbose)
    if ns.trace_hooks:
        os.environ["PLUGTRON_TRACE_HOOKS"] = ns.trace_hooks  # read by the hook facade (and torchrun children)
    try:
        return handler(ns)
    except PlugtronError as err:
        if ns.traceback or os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            import traceback

            traceback.print_exc(file=sys.stderr)  # for plugin authors: where their code failed
        print(f"plugtron: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("plugtron: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (plugtron recipes list | head): nothing went wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
