"""Text generation from a plugtron checkpoint: greedy or sampled decoding, one process, TP=1.

``open_checkpoint(path)`` loads the model through the same verified path as ``convert export-hf``
(manifest and CRC32 before anything is unpickled, ``.metadata`` through the restricted unpickler;
``plugtron.providers.hf.megatron_side``) and the tokenizer the run recorded in its
``run_config.yaml``. ``generate_ids`` is the decoding loop: one full forward over the whole context
per new token, no KV cache. That costs O(n^2) in the generated length, which is nothing next to the
load for the lengths this is for (checking what a model does after training), and keeps the forward
exactly Megatron-Core's own.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Iterator, List, Optional

import attrs
import torch

from plugtron.errors import CheckpointError, ConfigError

log = logging.getLogger("plugtron")


@attrs.define(kw_only=True)
class GenerationSettings:
    """``temperature`` 0 is greedy (argmax); above 0 tokens are sampled from the softmax of
    logits / temperature, restricted to the ``top_k`` most likely when ``top_k`` > 0. ``seed``
    makes sampling reproducible. Generation stops after ``max_new_tokens`` or at end-of-document."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 0
    seed: int = 1234

    def check(self) -> "GenerationSettings":
        problems = []
        if self.max_new_tokens < 1:
            problems.append(f"--max-new-tokens: expected >= 1, got {self.max_new_tokens}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            problems.append(f"--temperature: expected a finite value >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k < 0:
            problems.append(f"--top-k: expected >= 0 (0 = no limit), got {self.top_k}")
        if not 0 <= self.seed < 2**63:
            problems.append(f"--seed: expected an integer in [0, 2**63), got {self.seed}")
        if problems:
            raise ConfigError(problems, source="generate")
        return self


def next_token(logits: torch.Tensor, settings: GenerationSettings, generator: torch.Generator) -> int:
    """One id from the last position's logits (already cut to the real vocabulary)."""
    if settings.temperature == 0:
        return int(torch.argmax(logits))
    scaled = logits.float() / settings.temperature
    if 0 < settings.top_k < scaled.numel():
        kth = torch.topk(scaled, settings.top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def generate_ids(model, prompt: List[int], settings: GenerationSettings, vocab_size: int, context: int,
                 stop_id: Optional[int] = None) -> List[int]:
    """The new ids after ``prompt`` (not including it). ``vocab_size`` cuts Megatron's padded
    vocabulary (padding rows are no tokens); the model sees at most the last ``context`` ids (its
    ``seq_length``: positions beyond it were never trained). Stops after ``stop_id``."""
    if not prompt:
        raise ConfigError(["--prompt: the prompt has no tokens; give some text"], source="generate")
    model.eval()
    generator = torch.Generator().manual_seed(settings.seed)
    ids, new = list(prompt), []
    for _ in range(settings.max_new_tokens):
        window = ids[-context:]
        tokens = torch.tensor([window], dtype=torch.long)
        positions = torch.arange(len(window), dtype=torch.long).unsqueeze(0)
        logits = model(tokens, positions, None)  # causal mask from the layer spec: no mask tensor needed
        tok = next_token(logits[0, -1, :vocab_size], settings, generator)
        ids.append(tok)
        new.append(tok)
        if stop_id is not None and tok == stop_id:
            break
    return new


class LoadedModel:
    """A checkpoint's model (TP=1, eval mode), its provider, run config and tokenizer."""

    def __init__(self, path: str, provider, model, run_config, tokenizer):
        self.path, self.provider, self.model, self.run_config, self.tokenizer = path, provider, model, run_config, tokenizer

    def generate(self, prompt: str, settings: GenerationSettings) -> str:
        """The text generated after ``prompt`` (the prompt itself not repeated)."""
        settings.check()
        ids = self.tokenizer.tokenize(prompt)
        new = generate_ids(self.model, ids, settings, self.provider.vocab_size, self.provider.seq_length,
                           stop_id=self.tokenizer.eod)
        return self.tokenizer.detokenize(new)

    def chat_prompt(self, user_text: str) -> str:
        """``user_text`` as one user message in the chat format the model was fine-tuned with: the run's
        ``dataset.chat_template`` if it set one, else the tokenizer's own template (plugtron's own
        per-message format when it has none), followed by the generation prompt, as
        ``apply_chat_template(..., add_generation_prompt=True)`` renders it at inference."""
        from plugtron.data import chat_template

        template = chat_template.resolve(getattr(self.run_config.dataset, "chat_template", None), self.tokenizer)
        if template is None:  # plugtron's own format: "<role>\n" + content + "\n" per message
            return f"<user>\n{user_text}\n<assistant>\n"
        return template.render([{"role": "user", "content": user_text}], add_generation_prompt=True)


def _run_config(ckpt_dir: Path):
    from plugtron.checkpointing import layout
    from plugtron.config import from_yaml

    path = ckpt_dir / layout.RUN_CONFIG
    return from_yaml(path.read_text(encoding="utf-8"), source=str(path))


@contextlib.contextmanager
def open_checkpoint(path: str, key: str = "generate") -> Iterator[LoadedModel]:
    """The model of the checkpoint at ``path`` (a save directory, or one ``iter_XXXXXXX``) inside a
    one-process Megatron world (started here unless one is running, torn down after)."""
    from plugtron.checkpointing import tokenizer_files
    from plugtron.migrate.nemo2_checkpoint import is_nemo2_checkpoint
    from plugtron.providers.hf import megatron_side
    from plugtron.providers.model_kind import kind_for

    root = Path(path)
    if is_nemo2_checkpoint(str(root)):
        raise CheckpointError(f"{key}: {path} is a NeMo 2.0 checkpoint; its tokenizer is not recorded in a form "
                              "plugtron reads. Train or fine-tune from it (checkpoint.pretrained_checkpoint) and "
                              "generate from that run's checkpoint")
    ckpt_dir = megatron_side.checkpoint_dir(root, key)  # clear path errors; manifest, CRCs and .metadata verified
    if _adapter_only(ckpt_dir):  # a peft run's checkpoint: its base with the adapters applied
        from plugtron.providers.peft.merge import adapted_model, recorded_tokenizer

        with adapted_model(str(ckpt_dir)) as (run_config, provider, model, path):
            tokenizer = _tokenizer(run_config, recorded_tokenizer(run_config, path), path, key)
            yield LoadedModel(str(path), provider, model, run_config, tokenizer)
        return
    run_config = _run_config(ckpt_dir)
    if kind_for(run_config.model).name != "gpt":
        raise CheckpointError(f"{key}: {ckpt_dir} holds a {type(run_config.model).__name__} model; "
                              "generate supports decoder-only (GPT-style) models")
    tokenizer = _tokenizer(run_config, tokenizer_files.resolve(run_config.tokenizer, str(ckpt_dir)), ckpt_dir, key)
    with megatron_side.megatron_world(1):
        provider, model = megatron_side.load_verified(ckpt_dir, run_config.model, tp=1)
        model = _in_training_precision(provider, model)
        model.eval()
        yield LoadedModel(str(ckpt_dir), provider, model, run_config, tokenizer)


def _in_training_precision(provider, model):
    """A bf16/fp16 run trained inside Megatron's ``Float16Module`` (every weight, norms included, in
    half precision); generate runs the model the same way, not with fp32 norms under half-precision
    activations (torch warns that its fused rms_norm cannot take them, and the result would differ)."""
    if not (provider.bf16 or provider.fp16):
        return model
    from megatron.core.transformer.module import Float16Module

    return Float16Module(provider, model)


def _adapter_only(ckpt_dir: Path) -> bool:
    from plugtron.checkpointing import contents, layout

    ts = ckpt_dir / layout.TRAIN_STATE  # an import has none
    return ts.is_file() and bool(contents.load_weights_only(str(ts)).get("adapter_only"))


def _tokenizer(run_config, tok_cfg, ckpt_dir: Path, key: str):
    """The recorded tokenizer (paths already resolved against the checkpoint), checked against the model."""
    from plugtron.data.tokenizers import build_tokenizer
    from plugtron.providers.hf import megatron_side

    if tok_cfg.tokenizer_type == "ByteLevelTokenizer" and (ckpt_dir / megatron_side.HF_CONFIG).is_file():
        raise CheckpointError(f"{key}: {ckpt_dir} was imported from a Hugging Face directory without tokenizer files, "
                              "so its tokenizer is unknown; import again from a directory that holds tokenizer.json "
                              "(or tokenizer.model) next to config.json")
    tokenizer = build_tokenizer(tok_cfg)
    if tokenizer.vocab_size > run_config.model.vocab_size:
        raise CheckpointError(f"{key}: {ckpt_dir}: the recorded tokenizer ({tok_cfg.tokenizer_type}) has "
                              f"{tokenizer.vocab_size} ids, more than the model's vocabulary "
                              f"({run_config.model.vocab_size}); run_config.yaml does not belong to these weights")
    return tokenizer
