# NeMo 2.0 Python API
from nemo import lightning as nl
from nemo.collections import llm

# Basic trainer setup
trainer = nl.Trainer(
    max_steps=1000,
    val_check_interval=100,
    limit_val_batches=50,
    log_every_n_steps=10,
)

model = llm.LlamaModel(
    config=llm.LlamaConfig(
        seq_length=2048,
        num_layers=24,
        hidden_size=1024,
    )
)

# For fine-tuning
data = llm.FineTuningDataModule(
    dataset_root="/path/to/data", 
    seq_length=2048, 
    micro_batch_size=1, 
    global_batch_size=128
)

trainer.fit(model, data)
