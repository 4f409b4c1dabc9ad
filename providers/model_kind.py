"""What differs between model families in the training loop: the data and the forward step.

The loop, ``train_step`` and ``evaluate`` are the same for every model; a ``ModelKind`` chosen from
the provider (its ``model_kind`` class attribute; decoder-only GPT by default) supplies:

- ``problems(cfg)``: the run-config checks only this kind has (called by ``cfg.validate()``),
- ``extra_vocab(model)``: ids the model needs above the tokenizer's vocabulary,
- ``build_datasets(cfg, tokenizer)`` and ``collate``: the samples and how they become a micro batch,
- ``forward_step``: Megatron's ``forward_step_func`` for its schedules,
- ``seq_lengths(cfg)``: ``(seq_length, decoder_seq_length)`` for the schedules' tensor shapes,
- ``positions(cfg)``: the token positions one sample feeds the model (real tokens + padding),
  against which the real tokens a batch reports (``real_tokens``) are counted.
"""

from __future__ import annotations

from typing import List, Optional, Tuple


class GPTKind:
    """Decoder-only LM: tokens/labels/loss_mask/position_ids/attention_mask batches."""

    name = "gpt"

    def problems(self, cfg) -> List[str]:
        return []

    def extra_vocab(self, model) -> int:
        return 0

    def build_datasets(self, cfg, tokenizer):
        from plugtron.data import build_datasets

        return build_datasets(cfg, tokenizer)

    @property
    def collate(self):
        from plugtron.data.batches import collate

        return collate

    @property
    def forward_step(self):
        from plugtron.training.forward import forward_step

        return forward_step

    def seq_lengths(self, cfg) -> Tuple[int, int]:
        return cfg.model.seq_length, cfg.model.seq_length

    def positions(self, cfg) -> int:
        return cfg.model.seq_length


def _t5_forward_step(data_iterator, model):
    from plugtron.training.forward import loss_function

    b = next(data_iterator)
    # The decoder self-attention mask is None: the decoder's causal mask type builds it.
    output = model(b["text_enc"], b["text_dec"], b["enc_mask"], None, b["enc_dec_mask"], lm_labels=b["labels"])
    return output, loss_function(b["loss_mask"], model, b.get("real_tokens"))


class T5Kind:
    """Encoder-decoder T5 trained on span corruption of the pretraining datasets (``plugtron.data.t5``)."""

    name = "t5"

    def problems(self, cfg) -> List[str]:
        from plugtron.data.t5 import raw_length, span_counts, target_length

        m, out = cfg.model, []
        if m.pipeline_model_parallel_size > 1:
            out.append(f"model.pipeline_model_parallel_size: {m.pipeline_model_parallel_size}; T5 trains "
                       "without pipeline parallelism in plugtron (use tensor or data parallelism)")
        if m.context_parallel_size > 1:
            out.append(f"model.context_parallel_size: {m.context_parallel_size}; not supported for T5")
        if not hasattr(cfg.dataset, "blend"):
            out.append("dataset: T5 trains on span corruption of a pretraining dataset (blend, bundled corpus or "
                       "mock); SFT datasets and packing are not supported for T5")
        if not 0.0 < m.noise_density < 1.0:
            out.append(f"model.noise_density: expected a value in (0, 1), got {m.noise_density}")
        if m.mean_noise_span_length < 1.0:
            out.append(f"model.mean_noise_span_length: expected >= 1, got {m.mean_noise_span_length}")
        if out:
            return out
        raw = raw_length(m.seq_length, m.noise_density, m.mean_noise_span_length)
        need = target_length(raw, m.noise_density, m.mean_noise_span_length)
        if m.seq_length_dec < need:
            out.append(f"model.seq_length_dec: {m.seq_length_dec} is too short for the span-corruption targets of "
                       f"seq_length {m.seq_length} ({raw} text tokens: sentinels + noise tokens + EOD = {need}); "
                       f"set it to >= {need}")
        spans = span_counts(raw, m.noise_density, m.mean_noise_span_length)[1]
        if m.num_sentinel_tokens < spans:
            out.append(f"model.num_sentinel_tokens: {m.num_sentinel_tokens}, but a sample of seq_length "
                       f"{m.seq_length} has up to {spans} noise spans (one sentinel each)")
        return out

    def extra_vocab(self, model) -> int:
        return model.num_sentinel_tokens

    def build_datasets(self, cfg, tokenizer):
        import copy

        from plugtron.data import build_datasets
        from plugtron.data.t5 import SpanCorruptionDataset, raw_length
        from plugtron.errors import DataError

        m = cfg.model
        need = tokenizer.vocab_size + m.num_sentinel_tokens
        if m.vocab_size is not None and m.vocab_size < need:
            raise DataError(f"model.vocab_size: {m.vocab_size} has no room for the {m.num_sentinel_tokens} T5 "
                            f"sentinels above the tokenizer's {tokenizer.vocab_size} ids (needs >= {need}); "
                            "leave it unset to derive it")

        def wrap(ds) -> Optional[SpanCorruptionDataset]:
            if ds is None:
                return None
            return SpanCorruptionDataset(
                ds, tokenizer.vocab_size, tokenizer.eod, m.seq_length, m.seq_length_dec, cfg.dataset.random_seed,
                m.num_sentinel_tokens, m.noise_density, m.mean_noise_span_length)

        # Text samples longer than the encoder: span corruption shortens them to exactly seq_length.
        raw_cfg = copy.copy(cfg)
        raw_cfg.dataset = copy.copy(cfg.dataset)
        raw_cfg.dataset.sequence_length = raw_length(m.seq_length, m.noise_density, m.mean_noise_span_length)
        return tuple(wrap(ds) for ds in build_datasets(raw_cfg, tokenizer))

    @property
    def collate(self):
        from plugtron.data.t5 import collate_t5

        return collate_t5

    forward_step = staticmethod(_t5_forward_step)

    def seq_lengths(self, cfg) -> Tuple[int, int]:
        return cfg.model.seq_length, cfg.model.seq_length_dec

    def positions(self, cfg) -> int:
        """Encoder input and decoder input: both are real tokens up to their padding (the decoder's
        targets are about a quarter of the text, so most of a roomy ``seq_length_dec`` is padding)."""
        return cfg.model.seq_length + cfg.model.seq_length_dec


class MambaKind(GPTKind):
    """Mamba/hybrid decoder-only LM: GPT's batches and forward step (so ``name`` stays ``"gpt"``: what
    works on GPT-style checkpoints, such as ``generate``, works on these), plus one check."""

    def problems(self, cfg) -> List[str]:
        from plugtron.providers.gpt import uses_te_layers

        if getattr(cfg.dataset, "packing", False) and not uses_te_layers(cfg.model):
            # Without TE the packed row's examples are kept apart by the attention mask alone (see
            # training.step.thd_packed_seq_params); a Mamba layer ignores it and would carry its state on.
            return ["dataset.packed_sequence_specs: packed SFT rows are not supported for Mamba/hybrid models "
                    "without Transformer Engine and the mamba_ssm kernels (here the Mamba layers would carry "
                    "their state from one example into the next); set packed_sequence_size to -1"]
        return []


_KINDS = {"gpt": GPTKind(), "t5": T5Kind(), "mamba": MambaKind()}


def kind_for(model):
    """The ``ModelKind`` of a provider (its ``model_kind`` class attribute, default ``"gpt"``)."""
    return _KINDS[getattr(model, "model_kind", "gpt")]
