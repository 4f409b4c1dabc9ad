"""The catalog kinds of ``plugtron plugins new``: provider, optimizer, data_format and command.

Each follows the contract of its entry-point group as the registries define it (docs/plugins.md):

- provider (``model.provider: NAME``): a Megatron-Core ``TransformerConfig`` dataclass (a subclass
  of ``GPTModelProvider``) with the architecture's defaults;
- optimizer (``optimizer.optimizer: NAME``): a class with an ``Options`` attrs class
  (``optimizer_options.*``) and ``build(param_groups, optimizer_config, options)`` returning a torch
  optimizer over Megatron's parameter groups;
- data_format (``dataset.data_format: NAME``): a class built with its ``Options``
  (``dataset.format_options.*``), with ``expects(ds)`` and ``encode(record, ds, tokenizer, limit)``
  returning the token ids and the answer mask;
- command (``plugtron NAME ...``): ``add_parser(subparsers)``, which adds the parser and sets its
  ``handler`` (namespace -> exit status).

Each package's own tests pass once it is installed: a unit test of its code and a check that the
installed entry point loads it. Using it in a run is the registry's own end-to-end test.
"""

ENTRY_POINT_TEST = '''\
from importlib.metadata import entry_points

from $module import $cls


def test_the_installed_entry_point_names_this_class():
    (entry,) = [ep for ep in entry_points(group="$group") if ep.name == "$name"]
    assert entry.load() is $cls
'''

PROVIDER_MODULE = '''\
"""$name: a plugtron model provider (written by `plugtron plugins new $name --kind provider`).

A provider is a Megatron-Core ``TransformerConfig`` with the architecture's defaults; a config picks
it with ``model.provider: $name`` and may still set any field. This one is a small GPT with RoPE,
RMSNorm and SwiGLU; change the defaults to your architecture's. A named size is a subclass
registered under its own name.
"""

import dataclasses
from typing import Callable

import torch.nn.functional as F

from plugtron.providers.gpt import GPTModelProvider

PLUGTRON_API = ">=1,<2"  # the plugtron plugin API this package is written for (plugtron.PLUGIN_API)


@dataclasses.dataclass
class $cls(GPTModelProvider):
    num_layers: int = 2
    hidden_size: int = 64
    ffn_hidden_size: int = 176
    num_attention_heads: int = 4
    seq_length: int = 64
    normalization: str = "RMSNorm"
    activation_func: Callable = F.silu
    gated_linear_unit: bool = True
    position_embedding_type: str = "rope"
    add_bias_linear: bool = False
'''

PROVIDER_TEST = ENTRY_POINT_TEST + '''

def test_defaults_describe_the_architecture():
    provider = $cls()
    assert (provider.num_layers, provider.hidden_size, provider.normalization) == (2, 64, "RMSNorm")
    assert provider.gated_linear_unit and provider.position_embedding_type == "rope"
'''

PROVIDER_USAGE = '''
plugtron config show model.provider=$name --section model
'''

OPTIMIZER_MODULE = '''\
"""$name: a plugtron optimizer (written by `plugtron plugins new $name --kind optimizer`).

``optimizer.optimizer: $name`` picks it; its options are ``optimizer_options.momentum``. plugtron calls
``build`` with Megatron's parameter groups (their learning rate and weight decay are set by plugtron's
scheduler every step). This one is sign descent with momentum: each weight moves by ``lr`` against the
sign of its smoothed gradient. Importing the module is cheap (torch is imported by ``build``).
"""

import attrs

PLUGTRON_API = ">=1,<2"  # the plugtron plugin API this package is written for (plugtron.PLUGIN_API)


class $cls:
    """Sign descent with momentum (optimizer_options: momentum)."""

    @attrs.define(kw_only=True)
    class Options:
        momentum: float = attrs.field(default=0.9, metadata={"help": "gradient smoothing in [0, 1)"})

    @staticmethod
    def build(param_groups, optimizer_config, options):
        from ${module}.torch_optimizer import SignMomentum

        return SignMomentum(param_groups, lr=optimizer_config.lr, momentum=options.momentum)
'''

TORCH_OPTIMIZER = '''\
"""The torch optimizer behind $name (imported only when a run builds it)."""

import torch


class SignMomentum(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.9):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum: expected a value in [0, 1), got {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(p.grad, alpha=1 - group["momentum"])
                p.add_(torch.sign(buf), alpha=-group["lr"])
        return loss
'''

OPTIMIZER_TEST = ENTRY_POINT_TEST + '''

def test_moves_each_weight_by_lr_against_its_gradient():
    import types

    import torch

    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = $cls.build([{"params": [weight]}], types.SimpleNamespace(lr=0.5), $cls.Options(momentum=0.0))
    (weight * torch.tensor([2.0, -1.0, 0.0])).sum().backward()
    opt.step()
    assert weight.tolist() == [0.5, -1.5, 3.0]
'''

OPTIMIZER_USAGE = '''
plugtron config show optimizer.optimizer=$name optimizer.use_distributed_optimizer=false --section optimizer
'''

DATA_FORMAT_MODULE = '''\
"""$name: a plugtron SFT data format (written by `plugtron plugins new $name --kind data_format`).

``dataset.data_format: $name`` picks it; its options are ``dataset.format_options.*``. A format turns
one JSONL record into token ids and an answer mask (True where a token is learned). This one reads
``{"question": ..., "answer": ...}`` with the prompt ``Q: <question>\\\\nA: ``; the answer and the
end-of-document token are learned. Replace ``expects`` and ``encode`` with your format.
"""

import attrs
import numpy

PLUGTRON_API = ">=1,<2"  # the plugtron plugin API this package is written for (plugtron.PLUGIN_API)


class $cls:
    """``{"question": str, "answer": str}`` records; the answer is learned."""

    @attrs.define(kw_only=True)
    class Options:
        question_key: str = attrs.field(default="question", metadata={"help": "the record's prompt field"})
        answer_key: str = attrs.field(default="answer", metadata={"help": "the record's answer field"})

    def __init__(self, options=None):
        self.options = options or self.Options()

    def expects(self, ds):
        return f"{self.options.question_key!r} and {self.options.answer_key!r} strings"

    def encode(self, record, ds, tokenizer, limit):
        """(token ids, answer mask) of at most ``limit`` tokens (the prompt is cut first);
        a ``ValueError`` names what the record lacks."""
        o = self.options
        for key in (o.question_key, o.answer_key):
            if not isinstance(record.get(key), str):
                raise ValueError(f"expected a string under {key!r}, got {type(record.get(key)).__name__}")
        prompt = tokenizer.tokenize(f"Q: {record[o.question_key]}\\nA: ")
        answer = (tokenizer.tokenize(record[o.answer_key]) + [tokenizer.eod])[:limit]
        prompt = prompt[max(len(prompt) + len(answer) - limit, 0):]
        return (numpy.asarray(prompt + answer, dtype=numpy.int32),
                numpy.asarray([False] * len(prompt) + [True] * len(answer), dtype=bool))
'''

DATA_FORMAT_TEST = ENTRY_POINT_TEST + '''

class _Bytes:
    eod = 0

    def tokenize(self, text):
        return list(text.encode("utf-8"))


def test_encodes_a_record_learns_the_answer_and_names_a_missing_field():
    import pytest

    ids, answer = $cls().encode({"question": "1+1?", "answer": "2"}, None, _Bytes(), 64)
    assert bytes(ids[:-1].tolist()) == b"Q: 1+1?\\nA: 2" and ids[-1] == 0
    assert answer.tolist() == [False] * 11 + [True, True]
    ids, answer = $cls().encode({"question": "1+1?", "answer": "2"}, None, _Bytes(), 4)  # the prompt is cut first
    assert bytes(ids[:-1].tolist()) == b": 2" and answer.tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="'answer'"):
        $cls().encode({"question": "1+1?"}, None, _Bytes(), 64)
'''

DATA_FORMAT_USAGE = '''
plugtron config show dataset.dataset_root=my_data dataset.data_format=$name --section dataset
'''

COMMAND_MODULE = '''\
"""$name: a plugtron command (written by `plugtron plugins new $name --kind command`).

``add_parser`` adds ``plugtron $name ...`` to plugtron's command line and sets its ``handler``
(namespace -> exit status). Keep the module torch-free at import time: ``plugtron --help`` builds
every command's parser; import heavy packages inside the handler.
"""

PLUGTRON_API = ">=1,<2"  # the plugtron plugin API this package is written for (plugtron.PLUGIN_API)


def run(args):
    """Print a greeting (replace with what your command does)."""
    print(f"hello, {args.who}")
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("$name", help="print a greeting")
    parser.add_argument("who", nargs="?", default="world", help="whom to greet")
    parser.set_defaults(handler=run)
'''

COMMAND_TEST = '''\
import argparse
from importlib.metadata import entry_points

from $module import add_parser


def test_the_installed_entry_point_names_add_parser():
    (entry,) = [ep for ep in entry_points(group="$group") if ep.name == "$name"]
    assert entry.load() is add_parser


def test_parses_and_runs(capsys):
    parser = argparse.ArgumentParser(prog="plugtron")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["$name", "plugtron"])
    assert args.handler(args) == 0
    assert capsys.readouterr().out == "hello, plugtron\\n"
'''

COMMAND_USAGE = '''
python -c "import argparse, $module as m; p = argparse.ArgumentParser(); m.add_parser(p.add_subparsers()); a = p.parse_args(['$name']); a.handler(a)"
'''
