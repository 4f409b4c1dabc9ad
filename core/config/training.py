"""Loop-level config sections: train, scheduler, checkpoint, logger, dist, rng.

These classes are torch-free on purpose: ``plugtron plugins list`` reads the plugin toggles declared
here (``metadata={"plugin": ...}``) without importing torch or Megatron-Core.

Field names and meanings follow Megatron Bridge (``docs/migration.md`` maps the NeMo 2.0 names to them).
A field whose metadata names a ``plugin`` is that built-in plugin's on/off switch: the plugin is
enabled exactly when the field is truthy. That is the single source of truth for built-in plugins.
"""

from __future__ import annotations

from typing import Dict, Literal, Optional

import attrs

from plugtron.config._fields import toggle


@attrs.define(kw_only=True)
class TrainingConfig:
    """The loop: batch sizes, length, evaluation cadence and exit conditions.

    NeMo 2.0: ``trainer.max_steps`` -> ``train_iters``; ``val_check_interval`` -> ``eval_interval``;
    ``limit_val_batches`` / ``limit_test_batches`` -> ``eval_iters``.

    ``eval_interval``: evaluate the valid split every that many iterations, after the step;
    ``0`` or ``null`` (as ``eval_iters: 0``) turns evaluation off.
    """

    micro_batch_size: int = 1
    global_batch_size: int = 32
    train_iters: int = 1000
    eval_interval: Optional[int] = 1000
    eval_iters: int = 100
    skip_train: bool = False
    exit_interval: Optional[int] = None
    exit_duration_in_mins: Optional[float] = None
    # Former GarbageCollectionCallback: the manual_gc plugin.
    manual_gc: bool = toggle("manual_gc", default=False)
    manual_gc_interval: int = 0
    manual_gc_eval: bool = True
    # Former PreemptionCallback: the preemption plugin.
    exit_signal_handler: bool = toggle("preemption", default=False)
    exit_signal: str = "SIGTERM"
    # Former DDPParityChecker: the ddp_parity plugin.
    check_weight_hash_across_dp_replicas_interval: Optional[int] = toggle("ddp_parity", default=None)
    # Megatron-LM's --check-for-nan-in-loss-and-grad (on by default there too): the nan_guard plugin.
    check_for_nan_in_loss_and_grad: bool = toggle("nan_guard", default=True)
    check_for_spiky_loss: bool = False  # loss > spiky_loss_factor x running mean (nan_guard)
    spiky_loss_factor: float = 10.0
    spiky_loss_action: Literal["warn", "stop"] = "warn"


@attrs.define(kw_only=True)
class SchedulerConfig:
    """Learning-rate and weight-decay schedule (Megatron-Core ``OptimizerParamScheduler``).

    ``lr_warmup_iters`` / ``lr_decay_iters`` are in iterations; ``validate()`` derives the
    ``*_steps`` fields (in samples, as Megatron counts them) from ``train.global_batch_size``.
    ``lr_decay_iters`` defaults to ``train.train_iters``.
    """

    lr_decay_style: Literal["constant", "linear", "cosine", "inverse-square-root", "WSD"] = "linear"
    lr_decay_iters: Optional[int] = None
    lr_warmup_iters: int = 0
    lr_warmup_fraction: Optional[float] = None
    lr_warmup_init: float = 0.0
    lr_wsd_decay_style: Literal["linear", "cosine", "exponential", "minus_sqrt"] = "exponential"
    lr_wsd_decay_iters: Optional[int] = None
    start_weight_decay: Optional[float] = None
    end_weight_decay: Optional[float] = None
    weight_decay_incr_style: Literal["constant", "linear", "cosine"] = "constant"
    use_checkpoint_opt_param_scheduler: bool = False
    override_opt_param_scheduler: bool = False
    # Derived by validate(); in samples. Setting them by hand is allowed but overwritten.
    lr_warmup_steps: Optional[int] = None
    lr_decay_steps: Optional[int] = None
    wd_incr_steps: Optional[int] = None
    wsd_decay_steps: Optional[int] = None


@attrs.define(kw_only=True)
class CheckpointConfig:
    """Saving and loading (Megatron distributed checkpoints). Save-last is always on."""

    save: Optional[str] = None
    save_interval: Optional[int] = None
    most_recent_k: int = -1
    save_optim: bool = True
    save_rng: bool = True
    load: Optional[str] = None
    load_optim: bool = True
    load_rng: bool = True
    load_main_params_from_ckpt: bool = False
    pretrained_checkpoint: Optional[str] = None
    exit_on_missing_checkpoint: bool = False
    ckpt_format: Literal["torch_dist", "torch"] = "torch_dist"
    async_save: bool = False
    fully_parallel_save: bool = True
    fully_parallel_load: bool = False
    dist_ckpt_strictness: Literal[
        "assume_ok_unexpected", "log_unexpected", "log_all", "raise_unexpected", "raise_all",
        "return_unexpected", "return_all", "ignore_all",
    ] = "assume_ok_unexpected"
    ckpt_assume_constant_structure: bool = False
    # plugtron's own: where the `plugtron train` command puts a run that sets no `save` (neither in
    # its YAML nor on the command line): <runs_dir>/<recipe or YAML name>-<UTC time>/, checkpoints and
    # metrics.jsonl together. null: such a run saves nothing. Python's train(cfg) never applies it.
    runs_dir: Optional[str] = "runs"


@attrs.define(kw_only=True)
class LoggerConfig:
    """What the loop prints every ``log_interval`` iterations (NeMo: ``log_every_n_steps``)."""

    log_interval: int = 100
    # The throughput plugin (former NeMo SpeedMonitor + FLOPs callback), on by default.
    log_throughput: bool = toggle("throughput", default=True)
    # The params_norm plugin: the L2 norm of all weights in every log record (a pass over the weights
    # and a model-parallel all-reduce on log steps).
    log_params_norm: bool = toggle("params_norm", default=False)
    # Python logging level of plugtron's own logger on rank 0 (other ranks log warnings and above);
    # 10 (DEBUG) also shows the Megatron/torch warnings `plugtron` hides (plugtron.platform.quiet).
    logging_level: int = 20
    # The metrics_file plugin (on by default): every log record and eval result as a JSON line.
    metrics_file: bool = toggle("metrics_file", default=True)
    # Where metrics.jsonl goes; None: checkpoint.save, or a fresh directory under the system temp dir.
    metrics_dir: Optional[str] = None
    # The tensorboard plugin (optional extra plugtron[tensorboard]): on when a directory is set.
    tensorboard_dir: Optional[str] = toggle("tensorboard", default=None)
    tensorboard_log_interval: int = 1
    log_validation_ppl_to_tensorboard: bool = False
    # The timers plugin (former NeMo TimingCallback): forward-backward / optimizer / eval / save times.
    log_timers_to_tensorboard: bool = toggle("timers", default=False)
    # The memory plugin (Bridge's field name; it adds memory metrics to every log record, all loggers).
    log_memory_to_tensorboard: bool = toggle("memory", default=False)
    # The run_summary plugin (on by default): what the run did and produced, at its end, on rank 0.
    run_summary: bool = toggle("run_summary", default=True)
    # The wandb plugin (optional extra plugtron[wandb]): on when a project is set.
    wandb_project: Optional[str] = toggle("wandb", default=None)
    wandb_exp_name: Optional[str] = None
    wandb_entity: Optional[str] = None
    wandb_save_dir: Optional[str] = None
    # "offline": no network, the run stays in wandb_save_dir (sync later with `wandb sync`); None: WANDB_MODE or online.
    wandb_mode: Optional[Literal["online", "offline"]] = None
    # The mlflow plugin (optional extra plugtron[mlflow]): on when an experiment name is set.
    mlflow_experiment: Optional[str] = toggle("mlflow", default=None)
    mlflow_run_name: Optional[str] = None
    # None: a local file store, mlruns/ next to metrics.jsonl (see docs/builtin-plugins.md).
    mlflow_tracking_uri: Optional[str] = None
    mlflow_tags: Optional[Dict[str, str]] = None


@attrs.define(kw_only=True)
class DistributedInitConfig:
    """torch.distributed and Megatron process-group set-up (former MegatronStrategy settings).

    ``distributed_backend`` ``"auto"`` means NCCL with CUDA, gloo without.
    """

    distributed_backend: Literal["auto", "nccl", "gloo"] = "auto"
    distributed_timeout_minutes: int = 10
    use_gloo_process_groups: bool = True
    use_sharp: bool = False
    nccl_communicator_config_path: Optional[str] = None
    use_tp_pp_dp_mapping: bool = False
    lazy_init: bool = False
    # Former MegatronEnableExperimentalCallback: the megatron_experimental plugin.
    enable_megatron_core_experimental: bool = toggle("megatron_experimental", default=False)


@attrs.define(kw_only=True)
class RNGConfig:
    """Seeds. Every rank seeds ``seed + 100 * pipeline_rank`` (as Megatron-LM does)."""

    seed: int = 1234
    te_rng_tracker: bool = False
    data_parallel_random_init: bool = False
