"""THE table of NeMo 2.0 -> plugtron mappings (data, not code paths).

One row per NeMo 2.0 setting: ``(construct, argument)`` -> what it becomes. The script migrator
(``script.py``), the NeMo-Run override migrator (``overrides.py``) and ``docs/migration.md``
(rendered by ``docs.py``, checked by a test) all read these rows, so they cannot drift.

A rule is one of:
  ``"train.train_iters"``                   copy the value to that field
  ``Rule(field, transform, note)``           ``transform`` names a function in ``transforms.py``
  ``Drop(note)``                            accepted, nothing to set (e.g. save-last is always on)
  ``Unsupported(reason)``                   reported as not migrated, with the reason
Argument ``"*"`` of a construct is its presence (e.g. a callback in ``callbacks=[...]``);
argument ``"**"`` is the rule for every argument the construct's table does not list.

Spec: the NeMo 2.0 -> Megatron Bridge migration guide (``../shared/reference``), whose tables
these rows follow; where the guide says a mapping is not exact, the row's note says so.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple, Union


class Rule(NamedTuple):
    field: Optional[str]
    transform: Optional[str] = None
    note: str = ""


class Drop(NamedTuple):
    note: str


class Unsupported(NamedTuple):
    reason: str


Target = Union[str, Rule, Drop, Unsupported]

LAUNCHER = Unsupported("launcher setting: plugtron takes the world size from torchrun (--nproc_per_node, --nnodes)")

# construct -> {argument -> rule}. Constructs are NeMo class/function names as written in scripts.
TABLE: Dict[str, Dict[str, Target]] = {
    "Trainer": {
        "max_steps": "train.train_iters",
        "val_check_interval": "train.eval_interval",
        "limit_val_batches": "train.eval_iters",
        "limit_test_batches": Rule("train.eval_iters", "weak",
                                   "test iterations share train.eval_iters; limit_val_batches wins if both are given"),
        "log_every_n_steps": "logger.log_interval",
        "ckpt_path": "checkpoint.load",
        "devices": LAUNCHER, "num_nodes": LAUNCHER, "accelerator": LAUNCHER,
        "strategy": Drop("MegatronStrategy settings are migrated from its own construct"),
        "callbacks": Drop("each callback is migrated from its own construct"),
        "plugins": Drop("each plugin is migrated from its own construct"),
        "use_distributed_sampler": Drop("plugtron's Megatron samplers are always distributed"),
        "enable_checkpointing": Drop("checkpointing is on when checkpoint.save is set"),
        "logger": Drop("NeMoLogger is migrated from its own construct"),
        "max_epochs": Unsupported("plugtron counts iterations (train.train_iters), not epochs"),
        "accumulate_grad_batches": Unsupported("gradient accumulation follows from train.global_batch_size / "
                                               "(train.micro_batch_size x data-parallel size)"),
        "gradient_clip_val": Unsupported("Megatron ignores Lightning's clipping; set optimizer.clip_grad"),
        "num_sanity_val_steps": Unsupported("plugtron runs no sanity validation"),
    },
    "MegatronStrategy": {
        # Parallelism -> model (guide: "Parallelism Configuration Migration")
        **{k: f"model.{k}" for k in (
            "tensor_model_parallel_size", "pipeline_model_parallel_size", "virtual_pipeline_model_parallel_size",
            "microbatch_group_size_per_vp_stage", "num_layers_in_first_pipeline_stage",
            "num_layers_in_last_pipeline_stage", "context_parallel_size", "sequence_parallel",
            "expert_model_parallel_size", "expert_tensor_parallel_size", "pipeline_model_parallel_layout",
            "pipeline_model_parallel_comm_backend", "pipeline_dtype", "encoder_tensor_model_parallel_size",
            "encoder_pipeline_model_parallel_size", "account_for_embedding_in_pipeline_split",
            "account_for_loss_in_pipeline_split", "use_te_rng_tracker")},
        # DDP and distributed init (guide: "DDP / Strategy Settings Migration")
        "num_distributed_optimizer_instances": "ddp.num_distributed_optimizer_instances",
        **{k: f"dist.{k}" for k in ("use_gloo_process_groups", "use_sharp", "nccl_communicator_config_path",
                                     "use_tp_pp_dp_mapping", "lazy_init")},
        # Checkpointing (guide: "Checkpointing Configuration Migration")
        "save_ckpt_format": "checkpoint.ckpt_format",
        "ckpt_async_save": "checkpoint.async_save",
        "ckpt_parallel_save": "checkpoint.fully_parallel_save",
        "ckpt_parallel_load": "checkpoint.fully_parallel_load",
        "ckpt_load_optimizer": "checkpoint.load_optim",
        "ckpt_save_optimizer": "checkpoint.save_optim",
        "ckpt_load_main_params": "checkpoint.load_main_params_from_ckpt",
        "ckpt_load_strictness": Rule("checkpoint.dist_ckpt_strictness", "strictness",
                                     "None/True -> assume_ok_unexpected, False -> log_all (as NeMo reads them)"),
        "ckpt_assume_constant_structure": "checkpoint.ckpt_assume_constant_structure",
        "ddp": Drop("'megatron' is plugtron's only DDP; a DistributedDataParallelConfig is migrated on its own"),
        "gradient_as_bucket_view": Drop("Megatron's DDP always uses gradient buckets"),
    },
    "DistributedDataParallelConfig": {"**": Rule("ddp.{arg}", note="Megatron-Core's own config: fields map 1:1")},
    "MegatronMixedPrecisionPlugin": {
        "precision": Rule("mixed_precision", "precision", "a preset string, as plugtron's mixed_precision presets"),
        "params_dtype": Unsupported("set by the precision preset; for another dtype write a mixed_precision section"),
    },
    "ModelCheckpoint": {
        "dirpath": "checkpoint.save",
        "every_n_train_steps": "checkpoint.save_interval",
        "save_top_k": Rule("checkpoint.most_recent_k", None,
                           "not exact: NeMo keeps the best k by the monitored metric; plugtron keeps the k most recent"),
        "monitor": Drop("plugtron does not rank checkpoints by a metric (see save_top_k)"),
        "mode": Drop("plugtron does not rank checkpoints by a metric (see save_top_k)"),
        "save_last": Rule(None, "save_last", "plugtron always saves the last checkpoint"),
        "save_weights_only": Rule("checkpoint.save_optim", "invert", "inverse: save_weights_only=True is save_optim: false"),
        "save_optim_on_train_end": Drop("controlled by checkpoint.save_optim"),
        "filename": Drop("plugtron names checkpoints iter_XXXXXXX"),
        "train_time_interval": Unsupported("plugtron saves every checkpoint.save_interval iterations"),
    },
    "AutoResume": {
        "resume_from_directory": "checkpoint.load",
        "resume_if_exists": Drop("automatic: plugtron resumes when checkpoint.load holds a checkpoint"),
        "resume_ignore_no_checkpoint": Rule("checkpoint.exit_on_missing_checkpoint", "invert",
                                            "inverse: resume_ignore_no_checkpoint=True is exit_on_missing_checkpoint: false"),
        "restore_config": Drop("RestoreConfig is migrated from its own construct"),
        "import_path": Rule("checkpoint.pretrained_checkpoint", "hf_import",
                            "hf:// import: run `plugtron convert import-hf` first (see the command in this note)"),
        "adapter_path": Rule("checkpoint.load", None,
                             "an adapter checkpoint resumes through checkpoint.load on top of checkpoint.pretrained_checkpoint"),
    },
    "RestoreConfig": {
        "path": Rule("checkpoint.pretrained_checkpoint", "hf_import",
                     "a NeMo 2.0 checkpoint directory loads as is; hf:// needs `plugtron convert import-hf` first"),
        "load_model_state": Rule(None, "true_only", "pretrained_checkpoint always loads the model weights"),
        "load_optim_state": Rule(None, "false_only", "pretrained_checkpoint never loads optimizer state"),
    },
    "NeMoLogger": {
        "ckpt": Drop("ModelCheckpoint is migrated from its own construct"),
        "log_dir": Unsupported("plugtron logs to stdout; checkpoints go to checkpoint.save"),
        "name": Drop("experiment name: no plugtron equivalent needed"),
        "tensorboard": Unsupported("set logger.tensorboard_dir (the tensorboard plugin) by hand"),
        "wandb": Unsupported("set logger.wandb_project, wandb_exp_name, wandb_entity (the wandb plugin) by hand"),
        "use_datetime_version": Drop("plugtron does not version log directories"),
    },
    "MegatronOptimizerModule": {
        "config": Drop("OptimizerConfig is migrated from its own construct"),
        "lr_scheduler": Drop("the scheduler is migrated from its own construct"),
    },
    "OptimizerConfig": {"**": Rule("optimizer.{arg}", note="Megatron-Core's own OptimizerConfig: fields map 1:1")},
    "CosineAnnealingScheduler": {
        "*": Rule("scheduler.lr_decay_style", "const:cosine"),
        "warmup_steps": "scheduler.lr_warmup_iters",
        "max_steps": "scheduler.lr_decay_iters",
        "decay_steps": "scheduler.lr_decay_iters",
        "min_lr": "optimizer.min_lr",
        "constant_steps": Rule(None, "zero_only", "plugtron has no constant phase after the decay"),
        "interval": Drop("the schedule always steps per iteration"),
        "frequency": Drop("the schedule always steps per iteration"),
    },
    "distributed_fused_adam_with_cosine_annealing": {
        "*": Rule(None, "fused_adam_defaults", "optimizer adam, distributed, cosine decay (the helper's fixed choices)"),
        "max_lr": "optimizer.lr",
        "min_lr": "optimizer.min_lr",
        "warmup_steps": "scheduler.lr_warmup_iters",
        "constant_steps": Rule(None, "zero_only", "plugtron has no constant phase after the decay"),
        "adam_beta1": "optimizer.adam_beta1",
        "adam_beta2": "optimizer.adam_beta2",
        "clip_grad": "optimizer.clip_grad",
        "precision": Drop("precision comes from mixed_precision"),
    },
    # Model config classes (llm.<X>Config): fields are Megatron TransformerConfig fields.
    "<model config>": {
        "*": Rule("model.provider", "provider", "provider chosen from the NeMo config class"),
        "tokenizer": Drop("the tokenizer dict is migrated as its own construct"),
        "**": Rule("model.{arg}", note="model fields map 1:1 (guide: Model Configuration Mapping)"),
    },
    # Model wrappers (llm.<X>Model(config=...)).
    "<model>": {
        "*": Rule("model.provider", "provider_weak", "provider chosen from the NeMo model class"),
        "config": Drop("the model config is migrated from its own construct"),
        "tokenizer": Drop("the tokenizer is migrated from its own construct"),
        "model_transform": Drop("PEFT is migrated from the LoRA construct"),
        "optim": Drop("the optimizer is migrated from its own construct"),
    },
    "PreTrainingDataModule": {
        "paths": Rule("dataset", "paths", "a list becomes dataset.blend; a {train, validation, test} dict becomes blend_per_split"),
        "seq_length": Rule("dataset.sequence_length", "seq_length"),
        "micro_batch_size": "train.micro_batch_size",
        "global_batch_size": "train.global_batch_size",
        "split": "dataset.split",
        "seed": "dataset.random_seed",
        "index_mapping_dir": "dataset.path_to_cache",
        "reset_position_ids": "dataset.reset_position_ids",
        "reset_attention_mask": "dataset.reset_attention_mask",
        "eod_mask_loss": "dataset.eod_mask_loss",
        "tokenizer": Drop("the tokenizer is migrated from its own construct"),
        "num_workers": Drop("plugtron's data loader settings are fixed"),
        "pin_memory": Drop("plugtron's data loader settings are fixed"),
        "persistent_workers": Drop("plugtron's data loader settings are fixed"),
    },
    "MockDataModule": {
        "*": Rule("dataset.mock", "const:true"),
        "seq_length": Rule("dataset.sequence_length", "seq_length"),
        "micro_batch_size": "train.micro_batch_size",
        "global_batch_size": "train.global_batch_size",
        "tokenizer": Drop("the tokenizer is migrated from its own construct"),
    },
    "FineTuningDataModule": {
        "dataset_root": "dataset.dataset_root",
        "seq_length": Rule("dataset.seq_length", "seq_length"),
        "micro_batch_size": "train.micro_batch_size",
        "global_batch_size": "train.global_batch_size",
        "seed": "dataset.seed",
        "packed_sequence_specs": Drop("PackedSequenceSpecs is migrated from its own construct"),
        "tokenizer": Drop("the tokenizer is migrated from its own construct"),
        "num_workers": Drop("plugtron's data loader settings are fixed"),
    },
    "PackedSequenceSpecs": {
        "packed_sequence_size": "dataset.packed_sequence_specs.packed_sequence_size",
        "packed_train_data_path": "dataset.packed_sequence_specs.packed_train_data_path",
        "packed_val_data_path": "dataset.packed_sequence_specs.packed_val_data_path",
    },
    "SquadDataModule": {
        "*": Unsupported("SQuAD is downloaded by NeMo; plugtron reads local JSONL: set dataset.dataset_root "
                         "to a directory with training.jsonl / validation.jsonl (input/output keys)"),
        "seq_length": Rule("dataset.seq_length", "seq_length"),
        "micro_batch_size": "train.micro_batch_size",
        "global_batch_size": "train.global_batch_size",
        "seed": "dataset.seed",
        "tokenizer": Drop("the tokenizer is migrated from its own construct"),
    },
    # tokenizer=dict(...) inside a model config, and the tokenizer factories.
    "<tokenizer dict>": {
        "tokenizer_type": Rule("tokenizer.tokenizer_type", "tokenizer_type"),
        "vocab_file": "tokenizer.vocab_file",
        "merge_file": "tokenizer.merge_file",
        "tokenizer_model": "tokenizer.tokenizer_model",
        "vocab_size": "tokenizer.vocab_size",
    },
    "get_nmt_tokenizer": {
        "library": Rule("tokenizer.tokenizer_type", "nmt_library",
                        "megatron -> model_name (e.g. GPT2BPETokenizer), huggingface -> HuggingFaceTokenizer, "
                        "sentencepiece -> SentencePieceTokenizer"),
        "model_name": Rule(None, "nmt_model_name", "a Megatron tokenizer name, or the local Hugging Face tokenizer directory"),
        "vocab_file": "tokenizer.vocab_file",
        "merges_file": "tokenizer.merge_file",
        "tokenizer_model": "tokenizer.tokenizer_model",
        "use_fast": Drop("plugtron always uses the fast tokenizers library"),
    },
    "AutoTokenizer": {
        "*": Rule("tokenizer.tokenizer_type", "const:HuggingFaceTokenizer"),
        "pretrained_model_name": Rule("tokenizer.tokenizer_model", None,
                                      "must be a local directory: plugtron never downloads"),
        "use_fast": Drop("plugtron always uses the fast tokenizers library"),
    },
    "LoRA": {
        "*": Rule("peft", "section"),
        "target_modules": "peft.target_modules",
        "dim": "peft.dim",
        "alpha": "peft.alpha",
        "dropout": "peft.dropout",
        "dropout_position": "peft.dropout_position",
        "lora_A_init_method": "peft.lora_A_init_method",
        "lora_B_init_method": "peft.lora_B_init_method",
        "a2a_experimental": "peft.a2a_experimental",
        "exclude_modules": "peft.exclude_modules",
    },
    # Callbacks (guide: "Callback and Utility Mappings")
    "DdpParityChecker": {"interval": "train.check_weight_hash_across_dp_replicas_interval"},  # NeMo requires interval > 0
    "GarbageCollectionCallback": {
        "*": Rule("train.manual_gc", "const:true"),
        "gc_interval_train": "train.manual_gc_interval",
        "gc_interval_val": Rule("train.manual_gc_eval", "positive", "any positive interval -> collect at evaluation"),
    },
    "MegatronTokenDropCallback": {
        "moe_expert_capacity_factor": "model.moe_expert_capacity_factor",
        "moe_pad_expert_input_to_capacity": "model.moe_pad_expert_input_to_capacity",
    },
    "DeepEPCallback": {
        "*": Rule("deepep", "section", "the deepep section switches the plugin on; where DeepEP cannot run, NeMo did "
                  "nothing and plugtron stops with a named error (deepep.fallback_to_alltoall=true: alltoall instead)"),
    },
    "MegatronCommOverlapCallback": {
        "*": Rule("comm_overlap", "section", "the comm_overlap section switches the plugin on"),
        "tp_comm_overlap_cfg": Unsupported("TransformerEngine userbuffer configs are not part of plugtron's comm_overlap"),
        "tp_comm_bootstrap_backend": Unsupported("TransformerEngine userbuffer bootstrap is not part of plugtron's comm_overlap"),
        "**": Rule("comm_overlap.{arg}", note="same field names as NeMo's _CommOverlapConfig"),
    },
    "MegatronEnableExperimentalCallback": {"*": Rule("dist.enable_megatron_core_experimental", "const:true")},
    "NsysCallback": {
        "*": Rule("profiling.use_nsys_profiler", "const:true"),
        "start_step": "profiling.profile_step_start",
        "end_step": "profiling.profile_step_end",
        "ranks": "profiling.profile_ranks",
        "gen_shape": "profiling.record_shapes",
        "nvtx_ranges": "profiling.nvtx_ranges",
    },
    "PytorchProfilerCallback": {
        "*": Rule("profiling.use_pytorch_profiler", "const:true"),
        "start_step": "profiling.profile_step_start",
        "end_step": "profiling.profile_step_end",
        "trace_dir": "profiling.trace_dir",
        "ranks": "profiling.profile_ranks",
        "warmup_steps": Unsupported("plugtron warms up one step and records every step from profile_step_start "
                                    "to profile_step_end"),
        "active_steps": Unsupported("plugtron warms up one step and records every step from profile_step_start "
                                    "to profile_step_end"),
        "profiler_kwargs": Unsupported("extra torch.profiler arguments are not configurable"),
    },
    "MemoryProfileCallback": {
        "*": Rule("profiling.record_memory_history", "const:true"),
        "ranks": "profiling.profile_ranks",
        "dir": Unsupported("plugtron writes one snapshot per rank, <profiling.memory_snapshot_path>-rank<R>.pickle: "
                           "set memory_snapshot_path=<dir>/memory_snapshot.pickle"),
        "warn_cycles": Unsupported("reference-cycle warnings are not part of plugtron's memory profiler"),
    },
    "PreemptionCallback": {
        "*": Rule("train.exit_signal_handler", "const:true"),
        "sig": Rule("train.exit_signal", "signal_name"),
    },
    # llm.pretrain / llm.finetune (NeMo-Run entry points) and the recipe factories.
    "<entry point>": {
        "model": Rule("model.provider", "recipe_model", "the NeMo recipe module names the model"),
        "trainer": Drop("the Trainer is migrated from its own construct"),
        "data": Rule(None, "recipe_data"),
        "peft": Rule("peft", "peft_scheme", "'lora' or a LoRA construct"),
        "log": Drop("NeMoLogger is migrated from its own construct"),
        "optim": Drop("the optimizer is migrated from its own construct"),
        "resume": Drop("AutoResume is migrated from its own construct"),
        "tokenizer": Unsupported("NeMo's tokenizer source string ('data'/'model'): set the tokenizer section"),
    },
    "<recipe>": {
        "*": Rule("model.provider", "recipe_provider", "NeMo's recipe defaults are not copied: only what the script sets"),
        "peft_scheme": Rule("peft", "peft_scheme", "'lora' or a LoRA construct"),
        "dir": "checkpoint.save",
        "name": Drop("experiment name: no plugtron equivalent needed"),
        "num_nodes": LAUNCHER, "num_gpus_per_node": LAUNCHER,
    },
}

# NeMo-Run dotted paths (``nemo llm pretrain ... trainer.max_steps=10``) -> construct of the table.
# A path may name several constructs (``data`` is a pretraining or a fine-tuning data module): the
# first whose table has the argument is used. A top-level name is an argument of the entry point.
PATHS: Dict[str, Tuple[str, ...]] = {
    "trainer": ("Trainer",),
    "trainer.strategy": ("MegatronStrategy",),
    "trainer.strategy.ddp": ("DistributedDataParallelConfig",),
    "trainer.plugins": ("MegatronMixedPrecisionPlugin",),
    "log": ("NeMoLogger",),
    "log.ckpt": ("ModelCheckpoint",),
    "resume": ("AutoResume",),
    "resume.restore_config": ("RestoreConfig",),
    "optim": ("MegatronOptimizerModule",),
    "optim.config": ("OptimizerConfig",),
    "optim.lr_scheduler": ("CosineAnnealingScheduler",),
    "data": ("PreTrainingDataModule", "FineTuningDataModule"),
    "data.packed_sequence_specs": ("PackedSequenceSpecs",),
    "model.config": ("<model config>",),
    "model": ("<model>",),
    "peft": ("LoRA",),
}
# The NeMo-Run path of a construct (for ``var.attr = value`` on a variable holding it).
PATH_OF: Dict[str, str] = {c: p for p, cs in PATHS.items() for c in cs}

# NeMo model config / model classes -> plugtron provider names (``plugtron.providers.registry``).
MODEL_CONFIGS: Dict[str, str] = {
    "GPTConfig": "gpt", "LlamaConfig": "llama", "Llama2Config7B": "llama2_7b",
    "Llama3Config": "llama3", "Llama3Config8B": "llama3_8b", "Llama3Config70B": "llama3_70b",
    "Llama31Config": "llama31", "Llama31Config8B": "llama31_8b", "Llama31Config70B": "llama31_70b",
    "Llama31Config405B": "llama31_405b", "Llama32Config1B": "llama32_1b", "Llama32Config3B": "llama32_3b",
    "MistralConfig7B": "mistral_7b", "Qwen2Config": "qwen2", "Qwen25Config500M": "qwen25_0_5b",
    "Qwen25Config7B": "qwen25_7b", "Qwen25Config72B": "qwen25_72b", "MixtralConfig": "mixtral",
    "MixtralConfig8x7B": "mixtral_8x7b", "T5Config": "t5", "T5Config220M": "t5_220m", "SSMConfig": "mamba",
    "BaseMambaConfig130M": "mamba2_130m", "Qwen3Config": "qwen3", "Qwen3Config600M": "qwen3_0_6b",
    "Qwen3Config1P7B": "qwen3_1_7b", "Qwen3Config4B": "qwen3_4b", "Qwen3Config8B": "qwen3_8b",
    "Qwen3Config14B": "qwen3_14b", "Qwen3Config32B": "qwen3_32b", "Gemma3Config": "gemma3", "Gemma3Config1B": "gemma3_1b",
    "Gemma3Config4B": "gemma3_4b", "Gemma3Config12B": "gemma3_12b", "Gemma3Config27B": "gemma3_27b",
    "Phi3Config": "phi3", "Phi3ConfigMini": "phi3_mini",
}
MODELS: Dict[str, str] = {
    "GPTModel": "gpt", "LlamaModel": "llama", "MistralModel": "mistral", "Qwen2Model": "qwen2",
    "MixtralModel": "mixtral", "T5Model": "t5", "MambaModel": "mamba", "Qwen3Model": "qwen3", "Gemma3Model": "gemma3",
    "Phi3Model": "phi3",
}
# NeMo recipe modules (``llm.llama3_8b``) -> provider names. The whole recipe (parallelism, batch,
# schedule) is plugtron's recipe of the same model: ``--recipe <provider>_pretrain`` (see PLUGTRON_RECIPES).
RECIPES: Dict[str, str] = {
    "llama2_7b": "llama2_7b", "llama3_8b": "llama3_8b", "llama3_70b": "llama3_70b", "llama31_8b": "llama31_8b",
    "llama31_70b": "llama31_70b", "llama31_405b": "llama31_405b", "llama32_1b": "llama32_1b",
    "llama32_3b": "llama32_3b", "mistral_7b": "mistral_7b", "qwen25_500m": "qwen25_0_5b", "qwen25_7b": "qwen25_7b",
    "qwen25_72b": "qwen25_72b", "mixtral_8x7b": "mixtral_8x7b", "t5_220m": "t5_220m", "mamba2_130m": "mamba2_130m",
    "qwen3_600m": "qwen3_0_6b", "qwen3_1p7b": "qwen3_1_7b", "qwen3_4b": "qwen3_4b", "qwen3_8b": "qwen3_8b",
    "qwen3_14b": "qwen3_14b", "qwen3_32b": "qwen3_32b",
    "gemma3_1b": "gemma3_1b",
    "mamba2_370m": "mamba2_370m", "mamba2_780m": "mamba2_780m", "mamba2_1_3b": "mamba2_1_3b",
    "mamba2_2_7b": "mamba2_2_7b", "mamba2_8b": "mamba2_8b", "mamba2_hybrid_8b": "mamba2_hybrid_8b",
    "nemotronh_4b": "nemotronh_4b", "nemotronh_8b": "nemotronh_8b",
}
# Where plugtron's recipe is named as Bridge names it rather than as the provider.
_RECIPE_NAMES = {"mamba2_1_3b": "mamba2_1p3b", "mamba2_2_7b": "mamba2_2p7b"}
# NeMo recipe modules -> plugtron recipes (``pretrain_recipe`` -> ``_pretrain``; ``finetune_recipe``
# -> ``_sft`` with peft_scheme=None, ``_peft`` with 'lora'); None where plugtron has no recipe.
PLUGTRON_RECIPES: Dict[str, Optional[str]] = {
    k: (_RECIPE_NAMES.get(v, v) if v in (
        "llama3_8b", "llama3_70b", "llama31_8b", "llama31_70b", "llama31_405b", "llama32_1b", "llama32_3b",
        "qwen25_0_5b", "qwen25_7b", "qwen25_72b", "mixtral_8x7b", "t5_220m", "qwen3_0_6b", "qwen3_1_7b", "qwen3_4b",
        "qwen3_8b", "qwen3_14b", "qwen3_32b", "gemma3_1b", "mamba2_130m", "mamba2_370m", "mamba2_780m", "mamba2_1_3b",
        "mamba2_2_7b", "mamba2_8b", "mamba2_hybrid_8b", "nemotronh_4b", "nemotronh_8b") else None)
    for k, v in RECIPES.items()
}
# Recipes with pretraining only (Bridge has no fine-tuning recipe for these models).
PRETRAIN_ONLY = ("t5_220m", "mamba2_130m", "mamba2_370m", "mamba2_780m", "mamba2_1p3b", "mamba2_2p7b", "mamba2_8b",
                 "mamba2_hybrid_8b")
ENTRY_POINTS = ("pretrain", "finetune")
RECIPE_FACTORIES = ("pretrain_recipe", "finetune_recipe")
# Tokenizer names NeMo's get_nmt_tokenizer(library="megatron", model_name=...) accepts and plugtron has.
MEGATRON_TOKENIZERS = ("GPT2BPETokenizer",)


def construct_of(name: str) -> Optional[str]:
    """The table construct for a NeMo class/function name, or ``None`` if the guide has none."""
    if name in TABLE and not name.startswith("<"):
        return name
    if name in MODEL_CONFIGS:
        return "<model config>"
    if name in MODELS:
        return "<model>"
    if name in ENTRY_POINTS:
        return "<entry point>"
    if name in RECIPE_FACTORIES:
        return "<recipe>"
    return None


def rule_for(construct: str, arg: str) -> Optional[Target]:
    rows = TABLE[construct]
    if arg in rows:
        return rows[arg]
    if arg not in ("*",) and "**" in rows:
        rule = rows["**"]
        return rule._replace(field=rule.field.format(arg=arg)) if isinstance(rule, Rule) else rule
    return None


def resolve_path(path: str) -> Optional[Tuple[str, str, str]]:
    """``trainer.strategy.sequence_parallel`` -> ``("MegatronStrategy", "trainer.strategy", "sequence_parallel")``:
    the longest known prefix, then one argument name. ``None`` if the path has no construct."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        prefix, rest = ".".join(parts[:cut]), parts[cut:]
        if prefix in PATHS and len(rest) == 1:
            constructs = PATHS[prefix]
            chosen = next((c for c in constructs if rule_for(c, rest[0]) is not None), constructs[0])
            return chosen, prefix, rest[0]
        if prefix in PATHS:
            return None
    if len(parts) == 1:
        return "<entry point>", "", parts[0]
    return None


# Positional arguments followed by the script migrator, by construct.
POSITIONAL: Dict[str, Tuple[str, ...]] = {
    "<model>": ("config",),
    "get_nmt_tokenizer": ("library", "model_name"),
    "AutoTokenizer": ("pretrained_model_name",),
    "MegatronMixedPrecisionPlugin": ("precision",),
}
