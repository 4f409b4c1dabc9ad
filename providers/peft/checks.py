"""What a ``peft`` section needs of the rest of the config, checked before anything is built (the
plugin's ``config_problems``; ``train``, ``config show`` and ``plugins list`` report them)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import List

import attrs

from plugtron.providers.peft import targets


def _settings(peft):
    """The section's values; ``plugins list`` reads a partial view where unset fields are ``None``."""
    from plugtron.config import LoraConfig

    defaults = LoraConfig()
    return SimpleNamespace(**{f: getattr(defaults, f) if getattr(peft, f, None) is None else getattr(peft, f)
                              for f in attrs.fields_dict(LoraConfig)})


def config_problems(cfg) -> List[str]:
    from plugtron.providers.model_kind import kind_for

    peft, m = _settings(cfg.peft), cfg.model
    problems = targets.name_problems(list(peft.target_modules), "peft.target_modules")
    problems += targets.name_problems(list(peft.exclude_modules), "peft.exclude_modules")
    if not peft.target_modules:
        problems.append("peft.target_modules: empty; name at least one module (e.g. linear_qkv)")
    # Mamba/hybrid models are decoders with GPT batches: their attention and MLP layers take adapters (the
    # Mamba mixers' in_proj/out_proj are not among the adaptable names). T5 is refused.
    kind = type(kind_for(m)).__name__ if getattr(m, "model_kind", None) else "GPTKind"  # unset in plugins list
    if kind not in ("GPTKind", "MambaKind"):
        problems.append(f"peft: adapters are implemented for GPT-style decoder models; model is a {kind[:-4]} model")
    tp = getattr(m, "tensor_model_parallel_size", 1) or 1
    if tp > 1 and peft.dim % tp:
        problems.append(f"peft.dim: must be a multiple of model.tensor_model_parallel_size={tp} (the adapters' "
                        f"rank is split over TP like the layers), got {peft.dim}")
    if peft.a2a_experimental:
        problems.append("peft.a2a_experimental: adapters on MoE experts are not implemented; plugtron's adapters "
                        "wrap the dense layers only (set it to false)")
    if peft.method == "canonical_lora" and not getattr(m, "gated_linear_unit", False):
        named = [t for t in peft.target_modules if t.rsplit(".", 1)[-1] in {"gate_proj", "up_proj", "linear_fc1",
                                                                         "linear_fc1_gate", "linear_fc1_up"}]
        if named:
            problems.append(f"peft.target_modules: canonical LoRA splits linear_fc1 into gate and up, but the model's "
                            f"MLP is not gated (model.gated_linear_unit: false): {', '.join(named)}")
    if peft.method != "canonical_lora":
        separate = [t for t in peft.target_modules if t in {"linear_q", "linear_k", "linear_v", "linear_fc1_gate",
                                                           "linear_fc1_up"}]
        if separate:
            problems.append(f"peft.target_modules: {', '.join(separate)} name(s) parts of a fused layer, which only "
                            "peft.method: canonical_lora adapts separately (or use linear_qkv / linear_fc1)")
    return problems
