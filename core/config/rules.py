"""The value rules of the config, in one table: ``field path -> rule``.

The converter checks types (an ``int`` field gets an int); this table checks ranges and fixed sets,
and ``validate()`` applies it before deriving anything, so ``config show``, ``train`` and every
other command refuse the same values. ``docs/config.md`` lists this table (a test keeps the two
equal). Model rules apply to every provider that has the field (GPT, Llama, T5, Mamba, ...).

Where Megatron-Core defines a field, the rule follows its definition (docstrings and asserts in
``transformer_config.py``, ``model_parallel_config.py``, ``optimizer_config.py`` and the code that
consumes the value): a size is a count (>= 1), a dropout is a probability, Adam's betas are in
[0, 1) (``torch.optim.Adam`` refuses 1.0 and above), ``optimizer`` is what ``get_megatron_optimizer``
builds, seeds fit numpy's ``RandomState`` (Megatron's datasets seed it with the config's seed).
Non-finite floats (NaN, inf) are refused for every float field by the converter and again here.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Tuple

import attrs

from plugtron.config.converter import describe

SEED_MAX = 2**32 - 1  # numpy.random.RandomState / np.random.seed accept [0, 2**32 - 1]


@attrs.frozen
class Range:
    """A number within bounds; ``None`` bounds are open-ended; ``*_open`` excludes the bound."""

    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False

    def ok(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not math.isfinite(v)):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"a value in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"


@attrs.frozen
class OneOf:
    """A value from a fixed set; for a field that also takes a list, every item."""

    values: Tuple[Any, ...]

    def ok(self, v: Any) -> bool:
        items = v if isinstance(v, list) else [v]
        return all(isinstance(x, (str, int)) and x in self.values for x in items)

    def describe(self) -> str:
        return "one of " + ", ".join(repr(x) for x in self.values)


@attrs.frozen
class NamesOf:
    """Names from a fixed set: one name, ``"a,b"``, or a list (Megatron's ``cuda_graph_scope``
    splits on commas and looks each name up in an enum; enum members already resolved pass)."""

    values: Tuple[str, ...]

    def ok(self, v: Any) -> bool:
        items = v.split(",") if isinstance(v, str) else v if isinstance(v, list) else [v]
        return all(getattr(x, "name", x) in self.values for x in items)

    def describe(self) -> str:
        return "names from " + ", ".join(repr(x) for x in self.values) + " (a list or comma-separated)"


@attrs.frozen
class KeepCount:
    """``-1`` (keep everything) or a count >= 1."""

    def ok(self, v: Any) -> bool:
        return type(v) is int and (v == -1 or v >= 1)

    def describe(self) -> str:
        return "-1 (keep all) or >= 1"


@attrs.frozen
class Registered:
    """A name registered in one of plugtron's registries (``plugtron.registry``; entry points)."""

    kind: str

    def ok(self, v: Any) -> bool:
        from plugtron import registry

        return isinstance(v, str) and v in registry.entries(self.kind)

    def describe(self) -> str:
        return f"a registered {self.kind} (`plugtron registry list {self.kind}`)"

    def hint(self, v: Any) -> str:
        """Close names (of any kind) and the registered ones, for the error message."""
        from plugtron import registry

        return f"{registry.suggestion(str(v), self.kind)}; registered: {', '.join(registry.names(self.kind))}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


COUNT = Range(lo=1)  # sizes, intervals, degrees of parallelism
NONNEG = Range(lo=0)
POSITIVE = Range(lo=0, lo_open=True)
PROBABILITY = Range(lo=0, hi=1)
BETA = Range(lo=0, hi=1, hi_open=True)
SEED = Range(lo=0, hi=SEED_MAX)
# Signals a scheduler sends before killing a job (SLURM: SIGTERM, SIGUSR1/2 with --signal; SIGXCPU
# at a CPU limit); SIGKILL and SIGSTOP cannot be caught at all.
EXIT_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGXCPU")

RULES: Dict[str, Any] = {
    # train / scheduler / loop
    "train.micro_batch_size": COUNT,
    "train.global_batch_size": COUNT,
    "train.train_iters": NONNEG,
    "train.eval_interval": NONNEG,
    "train.eval_iters": NONNEG,
    "train.exit_interval": COUNT,
    "train.exit_duration_in_mins": POSITIVE,
    "train.manual_gc_interval": NONNEG,
    "train.exit_signal": OneOf(EXIT_SIGNALS),
    "train.check_weight_hash_across_dp_replicas_interval": NONNEG,
    "scheduler.lr_decay_iters": COUNT,
    "scheduler.lr_warmup_iters": NONNEG,
    "scheduler.lr_warmup_fraction": PROBABILITY,
    "scheduler.lr_warmup_init": NONNEG,
    "scheduler.lr_wsd_decay_iters": NONNEG,
    "scheduler.start_weight_decay": NONNEG,
    "scheduler.end_weight_decay": NONNEG,
    "checkpoint.save_interval": COUNT,
    "checkpoint.most_recent_k": KeepCount(),
    "logger.log_interval": COUNT,
    "logger.tensorboard_log_interval": COUNT,
    "logger.logging_level": OneOf((0, 10, 20, 30, 40, 50)),
    "dist.distributed_timeout_minutes": COUNT,
    "rng.seed": SEED,
    # data
    "dataset.sequence_length": COUNT,
    "dataset.seq_length": COUNT,
    "dataset.random_seed": SEED,
    "dataset.seed": SEED,
    "dataset.num_dataset_builder_threads": COUNT,
    "tokenizer.vocab_size": COUNT,
    "tokenizer.tokenizer_type": Registered("tokenizer"),
    "dataset.data_format": Registered("data_format"),
    # features
    "profiling.profile_step_start": NONNEG,
    "profiling.profile_step_end": NONNEG,
    "deepep.backend": OneOf(("deepep", "hybridep")),
    "straggler.report_interval": COUNT,
    "straggler.straggler_minmax_count": COUNT,
    "straggler.relative_perf_threshold": PROBABILITY,
    "ft.warmup_steps": NONNEG,
    "ft.min_steps_for_timeouts": COUNT,
    "comm_overlap.bucket_size": COUNT,
    "comm_overlap.wgrad_deferral_limit": NONNEG,
    "peft.dim": COUNT,
    "peft.alpha": COUNT,
    "peft.dropout": PROBABILITY,
    "mixed_precision.loss_scale": POSITIVE,
    "mixed_precision.initial_loss_scale": POSITIVE,
    "mixed_precision.min_loss_scale": POSITIVE,
    "mixed_precision.loss_scale_window": POSITIVE,
    "mixed_precision.hysteresis": COUNT,
    # optimizer (megatron/core/optimizer/optimizer_config.py)
    "optimizer.optimizer": Registered("optimizer"),
    "optimizer.lr": NONNEG,
    "optimizer.min_lr": NONNEG,
    "optimizer.decoupled_lr": NONNEG,
    "optimizer.decoupled_min_lr": NONNEG,
    "optimizer.weight_decay": NONNEG,
    "optimizer.adam_beta1": BETA,
    "optimizer.adam_beta2": BETA,
    "optimizer.adam_eps": POSITIVE,
    "optimizer.sgd_momentum": BETA,
    "optimizer.clip_grad": NONNEG,
    "optimizer.loss_scale": POSITIVE,
    "optimizer.initial_loss_scale": POSITIVE,
    "optimizer.min_loss_scale": POSITIVE,
    "optimizer.loss_scale_window": POSITIVE,
    "optimizer.hysteresis": COUNT,
    "optimizer.optimizer_offload_fraction": PROBABILITY,
    # ddp (megatron/core/distributed/distributed_data_parallel_config.py)
    "ddp.bucket_size": COUNT,
    "ddp.num_distributed_optimizer_instances": COUNT,
    # model: sizes (megatron/core/transformer/transformer_config.py)
    "model.num_layers": COUNT,
    "model.hidden_size": COUNT,
    "model.num_attention_heads": COUNT,
    "model.ffn_hidden_size": COUNT,
    "model.kv_channels": COUNT,
    "model.num_query_groups": COUNT,
    "model.vocab_size": COUNT,
    "model.seq_length": COUNT,
    "model.seq_length_dec": COUNT,
    "model.encoder_num_layers": COUNT,
    "model.max_position_embeddings": COUNT,
    "model.make_vocab_size_divisible_by": COUNT,
    "model.num_moe_experts": COUNT,
    "model.moe_ffn_hidden_size": COUNT,
    "model.moe_router_topk": COUNT,
    "model.moe_router_load_balancing_type": OneOf(("aux_loss", "seq_aux_loss", "global_aux_loss", "sinkhorn", "none")),
    # megatron/core/transformer/enums.py CudaGraphScope, plus the deprecated "full"
    "model.cuda_graph_scope": NamesOf(("full", "full_iteration", "attn", "mlp", "moe", "moe_router",
                                       "moe_preprocess", "mamba")),
    # model: numerics
    "model.hidden_dropout": PROBABILITY,
    "model.attention_dropout": PROBABILITY,
    "model.init_method_std": NONNEG,
    "model.layernorm_epsilon": POSITIVE,
    "model.rotary_base": POSITIVE,
    "model.rotary_percent": Range(lo=0, hi=1, lo_open=True),
    # model: parallelism (megatron/core/model_parallel_config.py)
    "model.tensor_model_parallel_size": COUNT,
    "model.pipeline_model_parallel_size": COUNT,
    "model.virtual_pipeline_model_parallel_size": COUNT,
    "model.context_parallel_size": COUNT,
    "model.expert_model_parallel_size": COUNT,
    "model.expert_tensor_parallel_size": COUNT,
    "model.num_layers_in_first_pipeline_stage": NONNEG,
    "model.num_layers_in_last_pipeline_stage": NONNEG,
}


def _get(cfg: Any, path: str) -> Tuple[bool, Any]:
    node = cfg
    for part in path.split("."):
        if node is None or isinstance(node, str) or not hasattr(node, part):
            return False, None  # section absent (peft: null), a preset string, or another provider
        node = getattr(node, part)
    return True, node


def check(cfg: Any, rules: Dict[str, Any] = RULES) -> List[str]:
    """``path: expected <rule>, got <value>`` for every rule a set field breaks (``None`` = unset)."""
    problems = []
    for path, rule in rules.items():
        present, value = _get(cfg, path)
        if present and value is not None and not rule.ok(value):
            hint = rule.hint(value) if hasattr(rule, "hint") else ""
            problems.append(f"{path}: expected {rule.describe()}, got {describe(value)}{hint}")
    return problems


def non_finite_floats(obj: Any, prefix: str, seen: Optional[set] = None) -> Iterable[str]:
    """Paths of NaN/inf floats anywhere in a config object (for configs built in Python; YAML and
    the command line are already refused by the converter)."""
    import dataclasses

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if attrs.has(type(obj)):
        names = [f.name for f in attrs.fields(type(obj))]
    elif dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj)]
    else:
        return
    for name in names:
        v = getattr(obj, name, None)
        if isinstance(v, float) and not math.isfinite(v):
            yield f"{prefix}{name}"
        elif attrs.has(type(v)) or dataclasses.is_dataclass(v):
            yield from non_finite_floats(v, f"{prefix}{name}.", seen)


def table_markdown() -> str:
    """The rule table as it appears in ``docs/config.md``."""
    rows = ["| field | rule |", "|---|---|"]
    rows += [f"| `{path}` | {rule.describe()} |" for path, rule in RULES.items()]
    return "\n".join(rows)
