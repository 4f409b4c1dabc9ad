"""Which linear layers get adapters: ``peft.target_modules`` and ``peft.exclude_modules`` matched
against the model's module paths (torch-free; ``adaptable`` takes the built chunks).

A target is a Megatron layer name (``linear_qkv``), a Hugging Face name the guide uses
(``qkv_proj``, ``o_proj``, ``gate_proj``...), or a pattern with ``*``/``?`` over the whole module
path (``*.layers.0.*.linear_qkv``; its last part may be a Hugging Face name too). Canonical LoRA
adapts the parts of the fused layers separately: ``linear_q``/``q_proj``, ``linear_k``, ``linear_v``,
``linear_fc1_gate``/``gate_proj``, ``linear_fc1_up``/``up_proj``.
"""

from __future__ import annotations

import fnmatch
from typing import Dict, FrozenSet, List, Tuple

# Megatron's linear layers of a GPT block (local and Transformer Engine specs name them alike).
MEGATRON = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2",
            # multi-latent attention (DeepSeek-V3): the query and key/value down and up projections
            "linear_q_proj", "linear_q_down_proj", "linear_q_up_proj", "linear_kv_down_proj", "linear_kv_up_proj")
# Name -> (Megatron layer, the part of its output; None: the whole layer).
_PARTS = {
    "linear_qkv": ("linear_qkv", None), "qkv_proj": ("linear_qkv", None),
    "linear_q": ("linear_qkv", "q"), "q_proj": ("linear_qkv", "q"),
    "linear_k": ("linear_qkv", "k"), "k_proj": ("linear_qkv", "k"),
    "linear_v": ("linear_qkv", "v"), "v_proj": ("linear_qkv", "v"),
    "linear_proj": ("linear_proj", None), "o_proj": ("linear_proj", None),
    "linear_fc1": ("linear_fc1", None),
    "linear_fc1_gate": ("linear_fc1", "gate"), "gate_proj": ("linear_fc1", "gate"),
    "linear_fc1_up": ("linear_fc1", "up"), "up_proj": ("linear_fc1", "up"),
    "linear_fc2": ("linear_fc2", None), "down_proj": ("linear_fc2", None),
    "gate_up_proj": ("linear_fc1", None),  # Phi-3's fused gate/up
    # MLA by Megatron's and DeepSeek's Hugging Face names (q_proj stays Llama's: DeepSeek's is linear_q_proj)
    "linear_q_proj": ("linear_q_proj", None), "linear_q_down_proj": ("linear_q_down_proj", None),
    "q_a_proj": ("linear_q_down_proj", None), "linear_q_up_proj": ("linear_q_up_proj", None),
    "q_b_proj": ("linear_q_up_proj", None), "linear_kv_down_proj": ("linear_kv_down_proj", None),
    "kv_a_proj_with_mqa": ("linear_kv_down_proj", None), "linear_kv_up_proj": ("linear_kv_up_proj", None),
    "kv_b_proj": ("linear_kv_up_proj", None),
}
KNOWN_NAMES = tuple(_PARTS)
ALL_PARTS = {"linear_qkv": frozenset({"q", "k", "v"}), "linear_fc1": frozenset({"gate", "up"})}


def is_pattern(target: str) -> bool:
    return any(c in target for c in "*?[.")


def name_problems(targets: List[str], where: str) -> List[str]:
    """A plain name outside the vocabulary above (patterns are checked against the built model)."""
    bad = [t for t in targets if not is_pattern(t) and t not in _PARTS]
    return [f"{where}: unknown module name {t!r}; expected one of {', '.join(KNOWN_NAMES)} "
            "or a pattern over module paths such as '*.layers.0.*.linear_qkv'" for t in bad]


NO_MATCH = object()


def _resolve(target: str, path: str):
    """The part of the layer at ``path`` that ``target`` selects (``None``: the whole layer), or
    ``NO_MATCH``."""
    leaf = path.rsplit(".", 1)[-1]
    if not is_pattern(target):
        layer, part = _PARTS[target]
        return part if layer == leaf else NO_MATCH
    head, _, last = target.rpartition(".")
    if last in _PARTS:  # '*.layers.0.*.q_proj': the pattern's path, the name's layer and part
        layer, part = _PARTS[last]
        return part if layer == leaf and fnmatch.fnmatchcase(path.rsplit(".", 1)[0], head) else NO_MATCH
    return None if fnmatch.fnmatchcase(path, target) else NO_MATCH


def select(paths: List[str], targets: List[str], exclude: List[str], canonical: bool) -> Tuple[Dict[str, FrozenSet], List[str]]:
    """``({module path: parts}, unmatched targets)`` for the adaptable ``paths`` that ``targets``
    select and ``exclude`` does not (an excluded part's name removes its whole layer). ``parts`` is
    empty for a whole-layer adapter; canonical LoRA lists the parts of a fused layer (a whole-layer
    target selects all of them). Without canonical LoRA a part selects its whole fused layer
    (``q_proj`` adapts ``linear_qkv``)."""
    chosen: Dict[str, set] = {}
    unmatched = []
    for target in targets:
        hits = 0
        for path in paths:
            part = _resolve(target, path)
            if part is NO_MATCH:
                continue
            hits += 1
            leaf = path.rsplit(".", 1)[-1]
            parts = chosen.setdefault(path, set())
            if canonical and leaf in ALL_PARTS:
                parts |= {part} if part else set(ALL_PARTS[leaf])
        if not hits:
            unmatched.append(target)
    for pattern in exclude:
        for path in list(chosen):
            if _resolve(pattern, path) is not NO_MATCH:  # the whole layer, also for a part's name
                del chosen[path]
    return {p: frozenset(v) for p, v in chosen.items()}, unmatched


def no_match_message(target: str, names: List[str], paths: List[str]) -> str:
    return (f"peft.target_modules: {target!r} matches no adaptable module; the model's adaptable modules are "
            f"{', '.join(names)} (paths like {', '.join(paths[:4])})")
