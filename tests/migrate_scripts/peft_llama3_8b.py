"""Llama 3 8B LoRA with a NeMo 2.0 recipe and NeMo-Run (input of tests/test_migrate_scripts.py)."""

import nemo_run as run
from nemo.collections import llm


def configure():
    recipe = llm.llama3_8b.finetune_recipe(
        name="llama3_8b_lora", dir="/lustre/checkpoints/llama3-8b-lora", num_nodes=1, num_gpus_per_node=8,
        peft_scheme="lora",
    )
    recipe.resume.restore_config.path = "/lustre/checkpoints/llama3-8b/step=1000-last"
    recipe.data = run.Config(llm.FineTuningDataModule, dataset_root="/lustre/datasets/sft", seq_length=2048,
                             micro_batch_size=1, global_batch_size=8)
    recipe.trainer.max_steps = 4
    recipe.trainer.val_check_interval = 2
    recipe.trainer.limit_val_batches = 2
    recipe.trainer.log_every_n_steps = 1
    recipe.trainer.strategy.tensor_model_parallel_size = 1
    recipe.peft.dim = 8
    recipe.peft.alpha = 16
    recipe.peft.target_modules = ["linear_qkv", "linear_proj"]
    recipe.optim.config.lr = 1e-4
    recipe.log.ckpt.every_n_train_steps = 2
    return recipe


if __name__ == "__main__":
    run.run(configure(), executor=run.LocalExecutor(ntasks_per_node=8, launcher="torchrun"))
