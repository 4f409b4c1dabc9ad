"""``AutoBridge``: Hugging Face directory <-> plugtron/Megatron checkpoint, as Megatron Bridge
names it (``AutoBridge.import_ckpt(hf_path, megatron_path)``).

Import: config.json picks the family and its provider; weights are mapped whole (``weights``),
then sharded into this rank's tensor-parallel slice of a real Megatron-Core model and written with
``dist_checkpointing`` (``megatron_side``). Export loads the checkpoint into a TP=1 model in one
process (torch_dist checkpoints reshard on load), maps back and writes config.json + safetensors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import torch

from plugtron import distributed
from plugtron.providers.hf import configs, files, megatron_side, streaming, weights
from plugtron.providers.hf.errors import ConversionError

log = logging.getLogger("plugtron")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def tp_independent_vocab_divisor(vocab_size: int, max_tp: int = 8) -> int:
    """A ``make_vocab_size_divisible_by`` (power of two <= 128) whose padded vocabulary is the same
    at every TP in 1, 2, 4, ... up to the largest possible of ``max_tp``: the padded size is a
    multiple of divisor x TP (Megatron's rule), so a checkpoint padded for TP=1 would otherwise
    not load at TP=2 (e.g. Qwen2.5's 151936 rows pad to 152064 at TP=2 with the default 128)."""
    tp = max_tp
    while tp >= 1:
        for d in (128, 64, 32, 16, 8, 4, 2, 1):
            if -(-vocab_size // d) % tp == 0:
                return d
        tp //= 2
    return 128  # unreachable: d=1, tp=1 always fits


def _export_tokenizer(ckpt_dir: Path, hf_dir: Path) -> None:
    from plugtron.checkpointing import tokenizer_files
    from plugtron.config import from_yaml

    run_config = ckpt_dir / "run_config.yaml"
    tok = from_yaml(run_config.read_text(encoding="utf-8"), source=str(run_config)).tokenizer
    if tokenizer_files.copy_hf_files(tokenizer_files.resolve(tok, str(ckpt_dir)), str(hf_dir)) == 0:
        log.info("export-hf: %s records no tokenizer files (%s); none written", ckpt_dir, tok.tokenizer_type)


def _streamed_pieces(model, provider, path: Path, rules, dtype):
    """(HF name, tensor[, row]) of the checkpoint at ``path`` (``weights.split_to_hf``), one Megatron
    parameter (or weight buffer: the router's expert bias) loaded at a time."""
    param_of = {megatron_side.canonical_name(name, provider): (name, t) for name, t in megatron_side.named_weights(model)}
    for rule in rules:
        if rule.mcore not in param_of:
            raise ConversionError(f"Megatron checkpoint: tensor '{rule.mcore}' is missing")
    loaded = streaming.load_parameters(model, path, [param_of[rule.mcore] for rule in rules])
    for rule, (_, tensor) in zip(rules, loaded):
        yield from weights.split_to_hf(rule, megatron_side.unpadded(rule.mcore, tensor, provider), dtype)


class AutoBridge:
    """A local Hugging Face model directory and its plugtron family."""

    def __init__(self, model_dir: Path, hf_config: dict):
        self.model_dir = model_dir
        self.hf_config = hf_config
        self.family = configs.family_of_config(hf_config, where=str(model_dir / "config.json"))

    @classmethod
    def from_hf_pretrained(cls, hf_model_id_or_path: str) -> "AutoBridge":
        model_dir = files.resolve_local(str(hf_model_id_or_path))
        return cls(model_dir, files.read_config(model_dir))

    def to_megatron_provider(self, **overrides: Any):
        """The provider for this model (a registered class), unfinalized; ``overrides`` are provider
        fields (e.g. ``tensor_model_parallel_size=2``)."""
        from plugtron.providers.gpt import te_available
        from plugtron.providers.registry import provider_class

        kwargs = self.family.to_provider(self.hf_config)
        cls = provider_class(self.family.name)
        # The checkpoint's parameter names depend on the layer spec; record the one used here.
        te = te_available() and not getattr(cls, "LOCAL_LAYERS_ONLY", False)
        kwargs["transformer_impl"] = "transformer_engine" if te else "local"
        kwargs["params_dtype"] = torch.float32
        kwargs["make_vocab_size_divisible_by"] = tp_independent_vocab_divisor(kwargs["vocab_size"])
        kwargs.update(overrides)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConversionError(f"provider {cls.__name__}: {exc}") from None

    def tokenizer_config(self):
        """The model directory's own tokenizer as a ``TokenizerConfig`` (absolute local paths), or
        None when it has none: recorded by the import so ``plugtron generate`` uses the right one."""
        from plugtron.config import TokenizerConfig

        d = self.model_dir.resolve()
        if (d / "tokenizer.json").is_file() or ((d / "vocab.json").is_file() and (d / "merges.txt").is_file()):
            return TokenizerConfig(tokenizer_type="HuggingFaceTokenizer", tokenizer_model=str(d))
        if (d / "tokenizer.model").is_file():
            return TokenizerConfig(tokenizer_type="SentencePieceTokenizer", tokenizer_model=str(d / "tokenizer.model"))
        return None

    def megatron_tensors(self, provider):
        return {name: read() for name, read in self.megatron_sources(provider).items()}

    def megatron_sources(self, provider):
        """Every Megatron tensor as a function reading it (names and shapes checked first)."""
        reader = files.SafetensorsReader(self.model_dir)
        return weights.hf_sources(self.family.name, provider, reader, where=str(self.model_dir))

    @classmethod
    def import_ckpt(cls, hf_model_id_or_path: str, megatron_path: str, tensor_model_parallel_size: int = 1,
                    overwrite: bool = False, **provider_overrides: Any) -> Path:
        """Convert a local Hugging Face model into a plugtron checkpoint at ``megatron_path``.
        With ``tensor_model_parallel_size > 1`` run it under torchrun (every rank calls it).
        ``megatron_path`` must be new or empty; ``overwrite`` replaces a previous import there
        (never a directory holding training checkpoints; see ``megatron_side.check_import_dir``)."""
        megatron_side.check_import_dir(Path(megatron_path), overwrite)  # before the work, not after
        bridge = cls.from_hf_pretrained(hf_model_id_or_path)
        tp = tensor_model_parallel_size
        provider = bridge.to_megatron_provider(tensor_model_parallel_size=tp, **provider_overrides)
        if tp > 1 and getattr(type(provider), "IMPORTS_AT_TP1_ONLY", False):
            why = getattr(type(provider), "TP1_IMPORT_REASON", "its expert biases need expert_tensor_parallel_size 1, "
                          "which the conversion's TP world does not set up")
            raise ConversionError(f"{bridge.model_dir}: {bridge.family.architecture} imports at TP=1 only ({why}); "
                                  "import without --tp: a training run at any TP reshards the checkpoint on load")
        sources = bridge.megatron_sources(provider)  # nothing read yet: tensor by tensor while writing
        with megatron_side.megatron_world(tp):
            built, model = megatron_side.build_meta_model(provider, tp)
            megatron_side.check_sources(model, built, sources)

            def shard_of(name, param):
                key = megatron_side.canonical_name(name, built)
                return megatron_side.local_shard(key, sources[key](), param, built)

            out = megatron_side.save(model, provider, Path(megatron_path), hf_config=bridge.hf_config, overwrite=overwrite,
                                      tokenizer=bridge.tokenizer_config(),
                                      source=streaming.ParameterSource(megatron_side.named_weights(model), shard_of))
        log.info("imported %s (%s) into %s", bridge.model_dir, bridge.family.architecture, out)
        return Path(megatron_path)

    @staticmethod
    def export_ckpt(megatron_path: str, hf_path: str, max_shard_bytes: Optional[int] = None,
                    overwrite: bool = False) -> Path:
        """Write ``hf_path``/config.json + safetensors from a plugtron checkpoint (any TP layout).
        ``hf_path`` must be new or empty; ``overwrite`` replaces config.json and the safetensors of
        a non-empty one (other files are kept; never a directory holding a plugtron checkpoint)."""
        files.check_export_dir(Path(hf_path), overwrite)  # before the work, not after
        root = Path(megatron_path)
        from plugtron.migrate.nemo2_checkpoint import is_nemo2_checkpoint

        nemo2 = is_nemo2_checkpoint(str(root))
        path = None if nemo2 else megatron_side.checkpoint_dir(root)  # verified (manifest, .metadata) once, here
        saved = None if nemo2 else path / megatron_side.HF_CONFIG
        original = json.loads(saved.read_text(encoding="utf-8")) if saved is not None and saved.is_file() else None
        provider = megatron_side.load_provider(root) if nemo2 else megatron_side.provider_of(path)
        with megatron_side.megatron_world(1):
            if nemo2:  # NeMo 2.0's own layout: loaded whole, as before
                provider, model = megatron_side.load_model(root, tp=1)
                tensors = megatron_side.gather(model, provider)
            else:
                provider, model = megatron_side.build_meta_model(provider, 1)
            config = configs.hf_config(provider, original)
            # transformers >= 4.56 writes "dtype", older versions "torch_dtype"
            dtype = _DTYPES.get(str(config.get("dtype", config.get("torch_dtype"))), torch.float32)
            fam = configs.family_of_provider(provider)
            rules = weights.rules_for(fam.name, provider)
            if nemo2:
                pieces = (p for rule in rules for p in weights.split_to_hf(rule, tensors[rule.mcore], dtype))
            else:  # one Megatron tensor at a time: read, split, written, released
                pieces = _streamed_pieces(model, provider, path, rules, dtype)
            if distributed.is_rank0():  # under torchrun: one writer
                files.remove_weights(Path(hf_path))  # empty unless overwrite: checked above
                files.write_model_dir_streaming(Path(hf_path), weights.hf_specs(fam.name, provider, dtype), pieces,
                                                config, max_shard_bytes=max_shard_bytes)
                if saved is not None:  # the checkpoint's tokenizer next to config.json: AutoTokenizer loads the export
                    _export_tokenizer(saved.parent, Path(hf_path))
        log.info("exported %s to %s", root, hf_path)
        return Path(hf_path)
