"""The learning-rate schedule of a resumed run against the saved one, in the config's own terms.

Megatron's ``OptimizerParamScheduler.load_state_dict`` asserts that every schedule value equals the
checkpoint's unless ``scheduler.override_opt_param_scheduler`` (the config wins) or
``scheduler.use_checkpoint_opt_param_scheduler`` (the checkpoint wins) is set - Megatron-LM's and
Megatron Bridge's defaults, kept here. Its message counts samples ("class input value 320 and
checkpoint value 160 for total number of iterations"); this module says the same in iterations and
config fields, and how to extend a finished run, before Megatron's assertion can fire.
"""

from __future__ import annotations

from typing import Any, Dict, List

# Megatron's state-dict key -> (config field, unit); "samples" values are shown in iterations.
_FIELDS = (
    ("max_lr", "optimizer.lr", None),
    ("min_lr", "optimizer.min_lr", None),
    ("lr_warmup_steps", "scheduler.lr_warmup_iters", "samples"),
    ("lr_decay_steps", "scheduler.lr_decay_iters (default: train.train_iters)", "samples"),
    ("lr_decay_style", "scheduler.lr_decay_style", None),
    ("start_wd", "scheduler.start_weight_decay", None),
    ("end_wd", "scheduler.end_weight_decay", None),
    ("wd_incr_steps", "train.train_iters (the weight-decay schedule's length)", "samples"),
    ("wd_incr_style", "scheduler.weight_decay_incr_style", None),
)


def _shown(value: Any, unit, global_batch_size: int) -> str:
    if unit == "samples" and isinstance(value, (int, float)):
        iters = value / global_batch_size
        return f"{iters:g} iterations" if iters == int(iters) else f"{value} samples"
    return repr(value)


def mismatches(scheduler, saved: Dict[str, Any], global_batch_size: int) -> List[str]:
    """``field: saved X, configured Y`` for each schedule value Megatron would refuse; empty when
    one of the two scheduler flags is set (Megatron then resolves the difference itself)."""
    if scheduler.override_opt_param_scheduler or scheduler.use_checkpoint_opt_param_scheduler:
        return []
    out = []
    for key, field, unit in _FIELDS:
        if key not in saved or not hasattr(scheduler, key):
            continue  # an older checkpoint without weight-decay scheduling
        mine, theirs = getattr(scheduler, key), saved[key]
        if mine != theirs:
            out.append(f"{field}: saved {_shown(theirs, unit, global_batch_size)}, "
                       f"configured {_shown(mine, unit, global_batch_size)}")
    return out


def message(ckpt: str, problems: List[str], train_iters: int) -> str:
    decay_only = all(p.startswith(("scheduler.lr_decay_iters", "train.train_iters")) for p in problems)
    head = (f"checkpoint: {ckpt} was saved with another learning-rate schedule than this run's: " + "; ".join(problems))
    if decay_only:  # the usual case: train.train_iters was raised to train a finished run further
        return (head + f". To continue it to train.train_iters={train_iters} with the decay stretched to the new "
                "length, add scheduler.override_opt_param_scheduler=true; to keep the saved schedule (the added "
                "iterations then run at optimizer.min_lr), add scheduler.use_checkpoint_opt_param_scheduler=true")
    return (head + ". Add scheduler.override_opt_param_scheduler=true to use this run's schedule, or "
            "scheduler.use_checkpoint_opt_param_scheduler=true to keep the saved one")
