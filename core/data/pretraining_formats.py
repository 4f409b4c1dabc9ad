"""plugtron's pretraining data formats (``dataset.data_format`` of a pretraining dataset section).

They are entries of the same entry-point group as the SFT formats, ``plugtron.data_formats``, and
registered in plugtron's pyproject.toml exactly as a package registers its own; what marks one as a
pretraining format is ``pretraining = True`` on its class. A pretraining format has:

- ``build(cfg, tokenizer, sizes)`` -> ``(train, valid, test)``: datasets of at least ``sizes[i]``
  samples (``None`` for a split asked for 0), each sample a dict of ``sequence_length`` arrays
  ``tokens``, ``labels``, ``loss_mask``, ``position_ids`` (and optionally ``attention_mask``), as
  Megatron's ``GPTDataset`` yields them;
- optionally ``problems(ds)``: config-only checks, run by ``ConfigContainer.validate()`` (so
  ``config show`` refuses what ``train`` refuses), and an ``Options`` attrs class structured from
  ``dataset.format_options`` and passed to its constructor.

This module is torch-free; Megatron is imported when a format builds.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple


class Indexed:
    """Megatron .bin/.idx files (dataset.blend or blend_per_split; unset: the bundled corpus).

    ``dataset.blend`` is split by ``dataset.split``; ``dataset.blend_per_split`` gives each split its
    own files; with neither, the corpus bundled with plugtron is used."""

    pretraining = True

    def problems(self, ds) -> List[str]:
        """What the builder would refuse, without touching files: blend weights and ``split``."""
        from plugtron.data.gpt import parse_blend, parse_split
        from plugtron.errors import DataError

        out: List[str] = []
        per_split = ds.blend_per_split is not None and any(b is not None for b in ds.blend_per_split)
        checks = [(lambda: parse_blend(ds.blend, "dataset.blend"))] if ds.blend is not None else []
        if per_split:
            if ds.blend is not None:
                out.append("dataset.blend and dataset.blend_per_split are exclusive; set one of them")
            if len(ds.blend_per_split) != 3:
                out.append(f"dataset.blend_per_split: expected 3 entries (train, valid, test), got {len(ds.blend_per_split)}")
            checks += [(lambda i=i, b=b: parse_blend(b, f"dataset.blend_per_split[{i}]"))
                       for i, b in enumerate(ds.blend_per_split)]
        else:
            checks.append(lambda: parse_split(ds.split))
        for run in checks:
            try:
                run()
            except DataError as err:
                out.append(str(err))
        return out

    def build(self, cfg, tokenizer, sizes: Sequence[int]) -> Tuple:
        from plugtron.data.gpt import build_indexed

        return build_indexed(cfg, tokenizer, sizes)


class Mock:
    """Megatron's synthetic MockGPTDataset (no files; dataset.mock: true picks it too).

    For smoke tests and benchmarks: documents of random length and ids, no data to prepare."""

    pretraining = True

    def build(self, cfg, tokenizer, sizes: Sequence[int]) -> Tuple:
        from plugtron.data.gpt import build_mock

        return build_mock(cfg, tokenizer, sizes)


def is_pretraining(cls) -> bool:
    return getattr(cls, "pretraining", False) is True


def format_name(ds) -> str:
    """The data format a dataset section picks: ``dataset.mock: true`` (Megatron Bridge's switch) is
    the ``mock`` format."""
    return "mock" if getattr(ds, "mock", False) else ds.data_format


def section_problem(ds, cls) -> Optional[str]:
    """One message when the picked format is of the other sort than the dataset section."""
    pretraining = hasattr(ds, "blend")
    if is_pretraining(cls) == pretraining:
        return None
    from plugtron import registry

    name = format_name(ds)
    fit = []
    for other, entry in registry.entries("data_format").items():
        try:
            if is_pretraining(registry.load_ep("data_format", other, entry.ep)) == pretraining:
                fit.append(other)
        except Exception:  # a broken entry is reported when it is picked, not here
            continue
    if pretraining:
        return (f"dataset.data_format: {name!r} is an SFT format (JSONL records under dataset.dataset_root); a "
                f"pretraining dataset takes a pretraining format: {', '.join(fit) or 'none registered'} "
                f"(for SFT set dataset.dataset_root)")
    return (f"dataset.data_format: {name!r} is a pretraining format; an SFT dataset (dataset.dataset_root) takes "
            f"one of: {', '.join(fit) or 'none registered'}")


def pretraining_format(ds):
    """The format object a pretraining dataset section picks, built with its structured options."""
    from plugtron import registry
    from plugtron.data.sft_examples import format_options
    from plugtron.errors import ConfigError

    cls = registry.load("data_format", format_name(ds), "dataset.data_format")
    wrong = section_problem(ds, cls)
    if wrong:
        raise ConfigError([wrong])
    options = format_options(cls, ds.format_options)
    return cls(options) if options is not None else cls()
