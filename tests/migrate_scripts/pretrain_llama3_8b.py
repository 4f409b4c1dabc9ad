"""Llama 3 8B pretraining with NeMo 2.0 and NeMo-Run (input of tests/test_migrate_scripts.py)."""

import nemo_run as run
from megatron.core.optimizer import OptimizerConfig
from nemo import lightning as nl
from nemo.collections import llm
from nemo.lightning.pytorch.callbacks import GarbageCollectionCallback, PreemptionCallback
from nemo.lightning.pytorch.optim import CosineAnnealingScheduler, MegatronOptimizerModule
from nemo.utils.exp_manager import TimingCallback

CKPT_DIR = "/lustre/checkpoints/llama3-8b"
SEQ_LENGTH = 8192


def trainer() -> run.Config[nl.Trainer]:
    strategy = run.Config(
        nl.MegatronStrategy,
        tensor_model_parallel_size=1,
        pipeline_model_parallel_size=1,
        context_parallel_size=1,
        sequence_parallel=False,
        ckpt_async_save=False,
        ckpt_parallel_save=True,
        save_ckpt_format="torch_dist",
    )
    return run.Config(
        nl.Trainer,
        devices=8,
        num_nodes=1,
        max_steps=6,
        val_check_interval=3,
        limit_val_batches=2,
        limit_test_batches=2,
        log_every_n_steps=1,
        strategy=strategy,
        plugins=[run.Config(nl.MegatronMixedPrecisionPlugin, precision="bf16-mixed")],
        callbacks=[
            run.Config(TimingCallback),
            run.Config(GarbageCollectionCallback, gc_interval_train=3, gc_interval_val=3),
            run.Config(PreemptionCallback),
        ],
    )


def model() -> run.Config[llm.LlamaModel]:
    return run.Config(llm.LlamaModel, config=run.Config(llm.Llama3Config8B, seq_length=SEQ_LENGTH))


def data() -> run.Config[llm.PreTrainingDataModule]:
    return run.Config(
        llm.PreTrainingDataModule,
        paths=["0.7", "/lustre/datasets/web_text_document", "0.3", "/lustre/datasets/code_text_document"],
        seq_length=SEQ_LENGTH,
        micro_batch_size=1,
        global_batch_size=512,
        split="90,8,2",
        seed=1234,
        num_workers=8,
    )


def optim() -> run.Config[MegatronOptimizerModule]:
    return run.Config(
        MegatronOptimizerModule,
        config=run.Config(
            OptimizerConfig,
            optimizer="adam",
            lr=3e-4,
            weight_decay=0.1,
            adam_beta1=0.9,
            adam_beta2=0.95,
            clip_grad=1.0,
            use_distributed_optimizer=True,
        ),
        lr_scheduler=run.Config(CosineAnnealingScheduler, warmup_steps=2, constant_steps=0, min_lr=3e-5),
    )


def log() -> run.Config[nl.NeMoLogger]:
    ckpt = run.Config(nl.ModelCheckpoint, dirpath=CKPT_DIR, every_n_train_steps=3, save_top_k=2, save_last=True,
                      monitor="reduced_train_loss")
    return run.Config(nl.NeMoLogger, log_dir="/lustre/logs", name="llama3_8b_pretrain", ckpt=ckpt)


def resume() -> run.Config[nl.AutoResume]:
    return run.Config(nl.AutoResume, resume_if_exists=True, resume_ignore_no_checkpoint=True,
                      resume_from_directory=CKPT_DIR)


pretrain = run.Partial(llm.pretrain, model=model(), data=data(), trainer=trainer(), log=log(), optim=optim(),
                       resume=resume())

if __name__ == "__main__":
    run.run(pretrain, executor=run.LocalExecutor(ntasks_per_node=8, launcher="torchrun"))
