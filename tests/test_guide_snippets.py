"""Every config-building "After (Megatron Bridge)" snippet of the migration guide, with imports
changed to plugtron, constructs without error and survives a YAML round trip.

Not covered here (not config construction): ``AutoBridge.import_ckpt`` (HF conversion) and the
NeMo-Run executor plugins (``run.Script`` launching), which plugtron replaces with torchrun."""

import torch

from plugtron.config import (
    CheckpointConfig, ConfigContainer, DistributedDataParallelConfig, DistributedInitConfig,
    FinetuningDatasetConfig, GPTDatasetConfig, LoggerConfig, LoraConfig, MixedPrecisionConfig,
    OptimizerConfig, PackedSequenceSpecs, ProfilingConfig, SchedulerConfig, TokenizerConfig,
    TrainingConfig, from_yaml, to_yaml,
)
from plugtron.providers import GPTModelProvider, LlamaProvider
from plugtron.recipes import distributed_fused_adam_with_cosine_annealing


def roundtrip(cfg):
    assert from_yaml(to_yaml(cfg)) == cfg
    return cfg


def test_core_configuration():
    cfg = ConfigContainer(
        model=GPTModelProvider(seq_length=2048, num_layers=24, hidden_size=1024,
                               tensor_model_parallel_size=2, pipeline_model_parallel_size=2),
        train=TrainingConfig(global_batch_size=512, micro_batch_size=1, train_iters=1000, eval_interval=100, eval_iters=10),
        optimizer=OptimizerConfig(optimizer="adam", lr=3e-4, use_distributed_optimizer=True),
        scheduler=SchedulerConfig(lr_decay_style="cosine", lr_warmup_iters=100, lr_decay_iters=1000),
        dataset=GPTDatasetConfig(blend=["/path/to/data_text_document"], sequence_length=2048),
        checkpoint=CheckpointConfig(save="/path/to/checkpoints", save_interval=100, ckpt_format="torch_dist"),
        logger=LoggerConfig(log_interval=10),
    )
    roundtrip(cfg)


def test_sft_and_peft_configuration():
    cfg = ConfigContainer(
        model=LlamaProvider(),
        train=TrainingConfig(micro_batch_size=1, global_batch_size=128, train_iters=500),
        dataset=FinetuningDatasetConfig(
            dataset_root="/path/to/sft/data", seq_length=2048, do_validation=True, do_test=True,
            packed_sequence_specs=PackedSequenceSpecs(packed_sequence_size=2048),
        ),
        checkpoint=CheckpointConfig(pretrained_checkpoint="/path/to/pretrained/model", save="/path/to/sft/checkpoints",
                                    load="/path/to/sft/checkpoints", save_interval=50),
        peft=LoraConfig(target_modules=["qkv_proj", "o_proj"], dim=64),
    )
    back = roundtrip(cfg)
    assert isinstance(back.dataset, FinetuningDatasetConfig) and back.dataset.packed_sequence_specs.packed_sequence_size == 2048
    ConfigContainer(peft=LoraConfig(target_modules=["qkv_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], dim=64, alpha=16),
                    checkpoint=CheckpointConfig(pretrained_checkpoint="/p", save="/s"))
    ConfigContainer(dataset=FinetuningDatasetConfig(dataset_root="/d", seq_length=4096, do_validation=True),
                    checkpoint=CheckpointConfig(pretrained_checkpoint="/m", save="/s"))


def test_training_parallelism_ddp_dist():
    TrainingConfig(train_iters=1000, eval_interval=100, eval_iters=50)
    LoggerConfig(log_interval=10)
    GPTModelProvider(num_layers=32, hidden_size=4096, tensor_model_parallel_size=8, pipeline_model_parallel_size=2,
                     context_parallel_size=2, sequence_parallel=True)
    DistributedDataParallelConfig(num_distributed_optimizer_instances=2)
    DistributedInitConfig(use_gloo_process_groups=True, use_sharp=False, nccl_communicator_config_path=None,
                          use_tp_pp_dp_mapping=False, lazy_init=False, enable_megatron_core_experimental=True)


def test_mixed_precision_both_options():
    roundtrip(ConfigContainer(mixed_precision="bf16-mixed"))
    cfg = roundtrip(ConfigContainer(mixed_precision=MixedPrecisionConfig(
        fp16=False, bf16=True, params_dtype=torch.bfloat16, pipeline_dtype=torch.bfloat16)))
    assert cfg.resolved_mixed_precision().pipeline_dtype == torch.bfloat16


def test_checkpoint_configuration():
    CheckpointConfig(save="/path/to/checkpoints", save_interval=1000, most_recent_k=3, ckpt_format="torch_dist",
                     async_save=True, fully_parallel_save=True, fully_parallel_load=True, load_optim=True,
                     save_optim=True, save_rng=True, dist_ckpt_strictness="assume_ok_unexpected")


def test_optimizer_and_scheduler_options():
    opt, sched = distributed_fused_adam_with_cosine_annealing(max_lr=3e-4, min_lr=3e-5, lr_warmup_iters=2000,
                                                              lr_decay_iters=100000)
    assert opt.use_distributed_optimizer and sched.lr_decay_style == "cosine"
    OptimizerConfig(optimizer="adam", lr=3e-4, min_lr=3e-5, weight_decay=0.1, use_distributed_optimizer=True)
    SchedulerConfig(lr_decay_style="cosine", lr_warmup_iters=2000, lr_decay_iters=100000)


def test_tokenizer_and_profiling():
    TokenizerConfig(tokenizer_type="GPT2BPETokenizer", vocab_file="/path/to/vocab.json", merge_file="/path/to/merges.txt")
    ProfilingConfig(use_nsys_profiler=True, profile_step_start=100, profile_step_end=110, profile_ranks=[0], record_shapes=True)
    ProfilingConfig(use_pytorch_profiler=True, profile_step_start=100, profile_step_end=110, profile_ranks=[0],
                    record_memory_history=True, memory_snapshot_path="memory_profile.pickle")


def test_moe_provider_fields():
    GPTModelProvider(num_moe_experts=8, moe_router_topk=2, moe_token_dispatcher_type="alltoall")


def test_pretraining_configuration():
    ConfigContainer(
        model=GPTModelProvider(),
        train=TrainingConfig(train_iters=100000, eval_interval=1000),
        dataset=GPTDatasetConfig(blend=["/path/to/train_data_text_document"], sequence_length=4096, split="949,50,1"),
    )
