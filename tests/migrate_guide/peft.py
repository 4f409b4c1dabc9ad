# NeMo 2.0 PEFT with Python API
from nemo import lightning as nl
from nemo.collections import llm
import nemo_run as run

# For PEFT, create LoRA instance
lora = llm.peft.LoRA(
    target_modules=['linear_qkv', 'linear_proj'],
    dim=32,
)

trainer = nl.Trainer(
    max_steps=500, 
    val_check_interval=100,
    callbacks=[lora]  # PEFT callback
)

model = llm.LlamaModel(
    config=llm.LlamaConfig(...),
    model_transform=lora  # PEFT transform
)

data = llm.SquadDataModule(seq_length=2048, micro_batch_size=1, global_batch_size=128)

trainer.fit(model, data)

# Or with NeMo-Run finetune API
sft = llm.finetune(
    model=llm.llama3_8b,
    data=llm.squad,
    trainer=trainer,
    peft=llm.peft.LoRA(target_modules=['linear_qkv', 'linear_proj'], dim=32),
)
sft.resume.import_path = "hf://meta-llama/Meta-Llama-3-8B"
sft.resume.adapter_path = "/path/to/checkpoints/last"
