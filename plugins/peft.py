"""PEFT (former NeMo ``llm.peft.LoRA`` / ``llm.peft.DoRA`` model transform and callback; Megatron
Bridge's ``peft=LoraConfig(...)``): adapters on the selected linear layers, everything else frozen.

Toggle: ``peft`` (the section present). ``method``: ``lora`` (default), ``dora`` or ``canonical_lora``;
``target_modules`` / ``exclude_modules``, ``dim``, ``alpha``, ``dropout``, ``dropout_position``,
``lora_A_init_method``, ``lora_B_init_method`` as in Bridge. The loop loads the base weights from
``checkpoint.pretrained_checkpoint`` first; ``transform_model`` then freezes every parameter and
attaches the adapters, so DDP allocates gradient buffers and the optimizer keeps state for the
adapters only, and checkpoints hold the adapters only. Cost: one tiny all-reduce at build time;
per adapted layer and step two small matmuls (and one all-reduce of ``[tokens, dim]`` for a
row-parallel layer with TP > 1). Merge and Hugging Face export: ``plugtron peft --help``.
"""

from __future__ import annotations

import logging
from typing import List

from plugtron.hookspecs import hookimpl

log = logging.getLogger("plugtron")


class Peft:
    @staticmethod
    def config_problems(config) -> List[str]:
        from plugtron.providers.peft.checks import config_problems

        return config_problems(config)

    def __init__(self, config):
        self.settings = config.peft
        self.counts = None

    @hookimpl
    def transform_model(self, config, model):
        from plugtron import distributed
        from plugtron.providers.peft.transform import apply_peft

        self.counts = apply_peft(self.settings, config.model, model, seed=config.rng.seed)
        if distributed.is_rank0():
            c = self.counts
            log.info(f"peft: {self.settings.method} on {c['adapted_layers']} layers, dim {self.settings.dim}: "
                     f"{c['trainable']:,} trainable of {c['total']:,} parameters on rank 0 "
                     f"({100 * c['trainable'] / max(c['total'], 1):.2f}%)")
