# Tokenizer often configured within model config
model_config = GPTConfig(
    tokenizer=dict(
        vocab_file="/path/to/vocab.json",
        merge_file="/path/to/merges.txt",
        tokenizer_type="GPT2BPETokenizer",
    )
)
