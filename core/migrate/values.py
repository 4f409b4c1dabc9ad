"""Values the migrators hand around, and the transforms the table names (torch-free).

A value read from a script is plain data (``1000``, ``"bf16-mixed"``, ``[0]``), a ``Symbol`` (a
dotted name that is not a constant, e.g. ``signal.SIGTERM`` or ``llm.llama3_8b``) or a
``Computed`` expression, which is never evaluated: the migrators report it instead of guessing.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple


class Symbol(NamedTuple):
    dotted: str

    @property
    def last(self) -> str:
        return self.dotted.rsplit(".", 1)[-1]


class Computed(NamedTuple):
    source: str


class NotMigrated(Exception):
    """A transform cannot express this value in plugtron; the message is the reason."""


# A transform returns ``[(field, value, weak)]``; ``weak`` values never override and never conflict.
Setting = Tuple[str, Any, bool]
Transform = Callable[[Optional[str], Any, Dict[str, Any], str], List[Setting]]


def _copy(field, v, args, name):
    return [(field, v, False)]


def _weak(field, v, args, name):
    return [(field, v, True)]


def _invert(field, v, args, name):
    if not isinstance(v, bool):
        raise NotMigrated(f"expected True or False, got {v!r}")
    return [(field, not v, False)]


def _strictness(field, v, args, name):
    if v is None or v is True:
        return [(field, "assume_ok_unexpected", False)]
    if v is False:
        return [(field, "log_all", False)]
    return [(field, v, False)]


def _precision(field, v, args, name):
    from plugtron.config.precision import PRESETS

    if str(v) not in PRESETS:
        raise NotMigrated(f"precision {v!r} is not a plugtron preset ({', '.join(PRESETS)})")
    return [(field, str(v), False)]


def _save_last(field, v, args, name):
    if v is False:
        raise NotMigrated("plugtron always saves the last checkpoint; save_last=False has no equivalent")
    return []


def _zero_only(field, v, args, name):
    if v not in (0, None):
        raise NotMigrated(f"{v!r} steps at constant lr after the decay: plugtron has no such phase")
    return []


def _true_only(field, v, args, name):
    if v is not True:
        raise NotMigrated(f"{v!r}: plugtron's pretrained_checkpoint always loads the model weights")
    return []


def _false_only(field, v, args, name):
    if v not in (False, None):
        raise NotMigrated(f"{v!r}: to resume optimizer state set checkpoint.load instead")
    return []


def _positive(field, v, args, name):
    return [(field, bool(v and v > 0), False)]


def _hf_import(field, v, args, name):
    if not isinstance(v, str):
        raise NotMigrated(f"expected a string, got {v!r}")
    if v.startswith("hf://"):
        out = "ckpt/" + v[len("hf://"):].rstrip("/").rsplit("/", 1)[-1]
        return [(field, out, False)]
    if v.startswith("nemo://") or "://" in v:
        raise NotMigrated(f"{v}: only hf:// imports and local NeMo 2.0 checkpoint directories are supported")
    return [(field, v, False)]


def hf_import_command(v: str, out: str) -> str:
    return f"plugtron convert import-hf <local copy of {v[len('hf://'):]}> {out}"


def _provider(field, v, args, name):
    from plugtron.migrate.table import MODEL_CONFIGS

    return [(field, MODEL_CONFIGS[name], False)]


def _provider_weak(field, v, args, name):
    from plugtron.migrate.table import MODELS

    return [(field, MODELS[name], True)]


def _recipe_model(field, v, args, name):
    from plugtron.migrate.table import RECIPES

    key = v.last if isinstance(v, Symbol) else v
    if key not in RECIPES:
        raise NotMigrated(f"NeMo recipe {key!r} has no plugtron provider (known: {', '.join(RECIPES)})")
    return [(field, RECIPES[key], False)]


def _recipe_provider(field, v, args, name):
    callee = args.get("__callee__", "")
    parts = callee.split(".")
    return _recipe_model(field, parts[-2] if len(parts) >= 2 else callee, args, name)


def _recipe_data(field, v, args, name):
    label = v.dotted if isinstance(v, Symbol) else repr(v)
    raise NotMigrated(f"NeMo data recipe {label}: plugtron reads local data; set the dataset section "
                      "(dataset.blend for pretraining, dataset.dataset_root for SFT)")


def _peft_scheme(field, v, args, name):
    if v in (None, "none"):
        return []
    if isinstance(v, str) and v.lower() == "lora":
        return [(field, {}, True)]
    if isinstance(v, str) and v.lower() == "dora":
        return [(field, {"method": "dora"}, True)]
    raise NotMigrated(f"PEFT scheme {v!r}: plugtron's peft section has LoRA, DoRA and canonical LoRA")


def _section(field, v, args, name):
    return [(field, {}, True)]


def _paths(field, v, args, name):
    if isinstance(v, str):
        return [("dataset.blend", [v], False)]
    if isinstance(v, (list, tuple)) and all(isinstance(p, (str, int, float)) for p in v):
        return [("dataset.blend", [str(p) for p in v], False)]
    if isinstance(v, dict) and set(v) <= {"train", "validation", "test"}:
        split = [v.get(k) for k in ("train", "validation", "test")]
        return [("dataset.blend_per_split", [None if s is None else ([s] if isinstance(s, str) else [str(p) for p in s])
                                             for s in split], False), ("dataset.split", None, False)]
    raise NotMigrated(f"paths {v!r}: expected a list of prefixes or a {{train, validation, test}} dict")


def _seq_length(field, v, args, name):
    return [(field, v, False), ("model.seq_length", v, False)]


_TOKENIZER_TYPES = ("ByteLevelTokenizer", "NullTokenizer", "GPT2BPETokenizer", "HuggingFaceTokenizer",
                    "SentencePieceTokenizer")


def _tokenizer_type(field, v, args, name):
    if v not in _TOKENIZER_TYPES:
        raise NotMigrated(f"tokenizer type {v!r}: plugtron has {', '.join(_TOKENIZER_TYPES)}")
    return [(field, v, False)]


def _nmt_library(field, v, args, name):
    if v == "megatron":
        model = args.get("model_name")
        return _tokenizer_type(field, model, args, name)
    if v == "huggingface":
        return [(field, "HuggingFaceTokenizer", False)]
    if v == "sentencepiece":
        return [(field, "SentencePieceTokenizer", False)]
    raise NotMigrated(f"tokenizer library {v!r}: plugtron supports megatron, huggingface, sentencepiece")


def _nmt_model_name(field, v, args, name):
    if args.get("library") == "huggingface":
        return [("tokenizer.tokenizer_model", v, False)]
    return []  # megatron: the name is the tokenizer type (see library)


def _signal_name(field, v, args, name):
    text = v.dotted if isinstance(v, Symbol) else str(v)
    sig = text.rsplit(".", 1)[-1]
    if not sig.startswith("SIG"):
        raise NotMigrated(f"expected a signal such as signal.SIGTERM, got {text}")
    return [(field, sig, False)]


def _fused_adam_defaults(field, v, args, name):
    return [("optimizer.optimizer", "adam", False), ("optimizer.use_distributed_optimizer", True, False),
            ("scheduler.lr_decay_style", "cosine", False)]


TRANSFORMS: Dict[Optional[str], Transform] = {
    None: _copy, "weak": _weak, "invert": _invert, "strictness": _strictness, "precision": _precision,
    "save_last": _save_last, "zero_only": _zero_only, "true_only": _true_only, "false_only": _false_only, "positive": _positive, "hf_import": _hf_import,
    "provider": _provider, "provider_weak": _provider_weak, "recipe_model": _recipe_model,
    "recipe_provider": _recipe_provider, "recipe_data": _recipe_data, "peft_scheme": _peft_scheme,
    "section": _section, "paths": _paths, "seq_length": _seq_length, "tokenizer_type": _tokenizer_type,
    "nmt_library": _nmt_library, "nmt_model_name": _nmt_model_name, "signal_name": _signal_name,
    "fused_adam_defaults": _fused_adam_defaults,
}


def transform(name: Optional[str]) -> Transform:
    if name is not None and name.startswith("const:"):
        from plugtron.config.yaml_io import parse_scalar

        const = parse_scalar(name[len("const:"):])
        return lambda field, v, args, cname: [(field, const, False)]
    return TRANSFORMS[name]
