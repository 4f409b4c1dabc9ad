"""Parameter-efficient fine-tuning: LoRA, DoRA and canonical LoRA adapters on Megatron's parallel
linear layers (``adapters``), which layers (``targets``), attaching them (``transform``), merging
them into the base weights and exporting them for Hugging Face PEFT (``merge``, ``hf_peft``).
The ``peft`` plugin (``plugtron.plugins.peft``) applies them in a training run. See docs/peft.md."""
