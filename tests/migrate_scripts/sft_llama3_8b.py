"""Llama 3 8B supervised fine-tuning with the NeMo 2.0 Python API (input of tests/test_migrate_scripts.py)."""

from megatron.core.optimizer import OptimizerConfig
from nemo import lightning as nl
from nemo.collections import llm
from nemo.lightning.pytorch.optim import CosineAnnealingScheduler, MegatronOptimizerModule

PRETRAINED = "/lustre/checkpoints/llama3-8b/step=1000-last"
OUT = "/lustre/checkpoints/llama3-8b-sft"
SEQ = 4096

if __name__ == "__main__":
    trainer = nl.Trainer(
        devices=8,
        max_steps=4,
        val_check_interval=2,
        limit_val_batches=2,
        log_every_n_steps=1,
        strategy=nl.MegatronStrategy(tensor_model_parallel_size=1, ckpt_load_optimizer=False),
        plugins=nl.MegatronMixedPrecisionPlugin(precision="bf16-mixed"),
    )
    data = llm.FineTuningDataModule(dataset_root="/lustre/datasets/sft", seq_length=SEQ, micro_batch_size=1,
                                    global_batch_size=8, seed=1234)
    model = llm.LlamaModel(llm.Llama3Config8B(seq_length=SEQ))
    optim = MegatronOptimizerModule(
        config=OptimizerConfig(optimizer="adam", lr=1e-5, weight_decay=0.01, clip_grad=1.0, use_distributed_optimizer=True),
        lr_scheduler=CosineAnnealingScheduler(warmup_steps=1, constant_steps=0, min_lr=0.0),
    )
    logger = nl.NeMoLogger(name="llama3_8b_sft", ckpt=nl.ModelCheckpoint(dirpath=OUT, every_n_train_steps=2,
                                                                          save_weights_only=False))
    resume = nl.AutoResume(restore_config=nl.RestoreConfig(path=PRETRAINED), resume_if_exists=True)
    llm.finetune(model=model, data=data, trainer=trainer, log=logger, optim=optim, resume=resume)
