"""The catalog kinds of ``plugtron plugins new``: provider, optimizer, data_format and command.

Each package's own tests pass once installed, with or without plugtron's registry of that kind: a unit
test of the code itself and a check that the installed entry point loads to the class. How plugtron
then *uses* the entry (``model.provider: NAME``, ``optimizer.optimizer: NAME``,
``dataset.data_format: NAME``, ``plugtron NAME``) is the registry's contract for that kind; its
end-to-end test belongs with the registry.
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
RMSNorm and SwiGLU; change the defaults to your architecture's.
"""

import dataclasses
from typing import Callable

import torch.nn.functional as F

from plugtron.providers.gpt import GPTModelProvider


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

A ``torch.optim.Optimizer``; its options are the typed ``Settings``. This one is sign descent with
momentum (each weight moves by ``lr`` against the sign of its smoothed gradient); replace ``step``.
"""

import attrs
import torch


class $cls(torch.optim.Optimizer):
    """Sign descent with momentum."""

    @attrs.define(kw_only=True)
    class Settings:
        lr: float = attrs.field(default=1e-3, metadata={"help": "step size"})
        momentum: float = attrs.field(default=0.9, metadata={"help": "gradient smoothing in [0, 1)"})

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
    import torch

    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = $cls([weight], lr=0.5, momentum=0.0)
    (weight * torch.tensor([2.0, -1.0, 0.0])).sum().backward()
    opt.step()
    assert weight.tolist() == [0.5, -1.5, 3.0]
'''

OPTIMIZER_USAGE = '''
python -c "import $module; print($module.$cls.Settings())"
'''

DATA_FORMAT_MODULE = '''\
"""$name: a plugtron SFT data format (written by `plugtron plugins new $name --kind data_format`).

A data format turns one JSONL record into a prompt and an answer, as token ids; only the answer is
learned. This one reads ``{"question": ..., "answer": ...}`` and writes the prompt as
``Q: <question>\\\\nA: ``; replace ``encode`` with your format.
"""

import attrs


class $cls:
    """``{"question": str, "answer": str}`` records."""

    @attrs.define(kw_only=True)
    class Settings:
        question_key: str = attrs.field(default="question", metadata={"help": "the record's prompt field"})
        answer_key: str = attrs.field(default="answer", metadata={"help": "the record's answer field"})

    def __init__(self, settings=None):
        self.settings = settings or self.Settings()

    def encode(self, record, tokenizer):
        """``(prompt_ids, answer_ids)``; a ``ValueError`` names what the record lacks."""
        s = self.settings
        for key in (s.question_key, s.answer_key):
            if not isinstance(record.get(key), str):
                raise ValueError(f"expected a string under {key!r}, got {type(record.get(key)).__name__}")
        prompt = f"Q: {record[s.question_key]}\\nA: "
        return tokenizer.tokenize(prompt), tokenizer.tokenize(record[s.answer_key])
'''

DATA_FORMAT_TEST = ENTRY_POINT_TEST + '''

class _Bytes:
    def tokenize(self, text):
        return list(text.encode("utf-8"))


def test_encodes_a_record_and_names_a_missing_field():
    import pytest

    prompt, answer = $cls().encode({"question": "1+1?", "answer": "2"}, _Bytes())
    assert bytes(prompt) == b"Q: 1+1?\\nA: " and bytes(answer) == b"2"
    with pytest.raises(ValueError, match="'answer'"):
        $cls().encode({"question": "1+1?"}, _Bytes())
'''

DATA_FORMAT_USAGE = '''
python -c "import $module; print($module.$cls.Settings())"
'''

COMMAND_MODULE = '''\
"""$name: a plugtron command (written by `plugtron plugins new $name --kind command`).

A command adds ``plugtron $name ...``: ``add_arguments`` declares its arguments on an ``argparse``
parser, ``run`` gets the parsed namespace and returns the exit status. Keep the module torch-free at
import time (``plugtron --help`` lists every command); import heavy packages inside ``run``.
"""


class $cls:
    """Print a greeting (replace with what your command does)."""

    help = "print a greeting"

    @staticmethod
    def add_arguments(parser):
        parser.add_argument("who", nargs="?", default="world", help="whom to greet")

    @staticmethod
    def run(args):
        print(f"hello, {args.who}")
        return 0
'''

COMMAND_TEST = ENTRY_POINT_TEST + '''

def test_parses_and_runs(capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="plugtron $name")
    $cls.add_arguments(parser)
    assert $cls.run(parser.parse_args(["plugtron"])) == 0
    assert capsys.readouterr().out == "hello, plugtron\\n"
'''

COMMAND_USAGE = '''
python -c "import argparse, $module as m; p = argparse.ArgumentParser(); m.$cls.add_arguments(p); m.$cls.run(p.parse_args([]))"
'''
