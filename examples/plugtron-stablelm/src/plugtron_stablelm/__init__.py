"""StableLM for plugtron (Stability AI's StableLM / StableLM 2; ``transformers``' ``StableLmForCausalLM``).

The architecture is Llama's (RoPE, SwiGLU MLP, no linear biases, untied embeddings) with LayerNorm
(with bias) instead of RMSNorm, rotary embeddings on only the first quarter of each head
(``partial_rotary_factor`` -> Megatron's ``rotary_percent``) and, in StableLM 2, biases on Q/K/V.
Three entries: ``provider`` (the model), ``hf`` (config and weight mapping), ``recipes``.
"""

PLUGTRON_API = ">=1,<2"
