"""plugtron's own commands, registered in the entry-point group ``plugtron.commands`` exactly as a
package registers its own: each entry is ``add_parser(subparsers)``, which adds the parser
``plugtron NAME`` and sets ``handler`` (``ns -> exit status``) with ``set_defaults``.

Everything here is torch-free (``plugtron --help`` builds every parser); handlers import their module
when they run. For commands with actions (``convert import-hf``) the handler is looked up by action.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict


def _lazy(path: str) -> Callable:
    """``"module:function"`` imported when the command runs, not when the parser is built."""
    def run(ns) -> int:
        module, fn = path.split(":")
        return getattr(importlib.import_module(module), fn)(ns)

    return run


def _by_action(parser, actions: Dict[str, str]) -> None:
    def run(ns) -> int:
        if getattr(ns, "action", None) not in actions:
            parser.print_help()
            return 2
        return _lazy(actions[ns.action])(ns)

    parser.set_defaults(handler=run)


def _with_config(sp) -> None:
    from plugtron.cli.recipes_cmd import recipe_help

    sp.add_argument("args", nargs="*", metavar="[CONFIG.yaml] [key=value]",
                    help="a YAML config and/or dotted overrides such as train.train_iters=100")
    sp.add_argument("--recipe", default="tiny", help=recipe_help())


def train(sub) -> None:
    """Train a model (no arguments: the tiny recipe on the bundled corpus)."""
    p = sub.add_parser("train", help="train a model (no arguments: the tiny recipe on the bundled corpus)")
    _with_config(p)
    p.set_defaults(handler=_lazy("plugtron.cli.main:cmd_train"))


def config(sub) -> None:
    """Inspect configs: config show prints the resolved, validated config."""
    from plugtron.cli.recipes_cmd import add_show_options

    p = sub.add_parser("config", help="inspect configs")
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    show = acts.add_parser("show", help="print the resolved, validated config as YAML")
    _with_config(show)
    add_show_options(show)
    _by_action(p, {"show": "plugtron.cli.main:cmd_config_show"})


def plugins(sub) -> None:
    """Inspect plugins: installed, enabled, their hooks and options."""
    p = sub.add_parser("plugins", help="inspect plugins")
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    _with_config(acts.add_parser("list", help="installed plugins: source, hooks, enabled (checked like train)"))
    show = acts.add_parser("show", help="one plugin: docs, package, toggle, options, hooks, enabled")
    show.add_argument("name", help="the plugin's name (as in plugins list)")
    _with_config(show)
    from plugtron.cli.plugins_new import add_parser as add_new_parser

    add_new_parser(acts)
    _by_action(p, {"list": "plugtron.cli.main:cmd_plugins_list", "show": "plugtron.cli.main:cmd_plugins_show",
                   "new": "plugtron.cli.plugins_new:cmd_new"})


def registry(sub) -> None:
    """Everything packages registered: providers, recipes, optimizers, data formats, commands, ..."""
    from plugtron.cli.registry_cmd import add_parser

    add_parser(sub)


def recipes(sub) -> None:
    """Recipes (Megatron Bridge's settings per model): list, show."""
    from plugtron.cli.recipes_cmd import add_parser

    add_parser(sub)
    _by_action(sub.choices["recipes"], {"list": "plugtron.cli.recipes_cmd:cmd_list",
                                        "show": "plugtron.cli.recipes_cmd:cmd_show"})


def convert(sub) -> None:
    """Hugging Face <-> plugtron checkpoints (import-hf, export-hf)."""
    from plugtron.providers.hf.commands import add_parser

    add_parser(sub)
    _by_action(sub.choices["convert"], {"import-hf": "plugtron.providers.hf.commands:cmd_import_hf",
                                        "export-hf": "plugtron.providers.hf.commands:cmd_export_hf"})


def peft(sub) -> None:
    """Adapter checkpoints of peft runs: merge, Hugging Face PEFT export."""
    from plugtron.providers.peft.commands import add_parser

    add_parser(sub)
    _by_action(sub.choices["peft"], {"merge": "plugtron.providers.peft.commands:cmd_merge",
                                     "export-hf": "plugtron.providers.peft.commands:cmd_export_hf"})


def data(sub) -> None:
    """Prepare data: JSONL -> Megatron indexed dataset."""
    from plugtron.data.preprocess.cli import add_arguments

    p = sub.add_parser("data", help="prepare data")
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    add_arguments(acts.add_parser("preprocess", help="JSONL -> Megatron indexed dataset (.bin/.idx)"))
    from plugtron.data.sft_inspect import add_arguments as add_inspect_arguments

    add_inspect_arguments(acts.add_parser("inspect", help="SFT examples as a run sees them: learned tokens marked"))
    _by_action(p, {"preprocess": "plugtron.data.preprocess.cli:run", "inspect": "plugtron.cli.main:cmd_data_inspect"})


def migrate(sub) -> None:
    """NeMo 2.0 script / NeMo-Run overrides -> plugtron config (read statically, never run)."""
    from plugtron.migrate.cli import add_parser

    add_parser(sub)
    _by_action(sub.choices["migrate"], {"nemo2": "plugtron.migrate.cli:cmd_nemo2",
                                        "nemo2-overrides": "plugtron.migrate.cli:cmd_nemo2_overrides",
                                        "callback": "plugtron.migrate.callback_cli:cmd_callback"})


def generate(sub) -> None:
    """Text from a checkpoint's model (greedy or sampled)."""
    from plugtron.cli.generate_cmd import add_parser

    add_parser(sub)
    sub.choices["generate"].set_defaults(handler=_lazy("plugtron.cli.generate_cmd:run"))


def plot(sub) -> None:
    """Loss and throughput of runs' metrics.jsonl as a PNG."""
    from plugtron.cli.plot import add_parser

    add_parser(sub)
    sub.choices["plot"].set_defaults(handler=_lazy("plugtron.cli.plot:cmd_plot"))
