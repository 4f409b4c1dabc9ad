"""``--recipe tiny_stablelm``: plugtron's tiny Llama run with a StableLM model of the same size."""


def tiny_stablelm():
    """StableLM architecture (LayerNorm, 25% rotary, QKV biases), 4 layers of 128, bundled corpus, CPU."""
    from plugtron.recipes import get_recipe
    from plugtron_stablelm.provider import StableLMProvider

    cfg = get_recipe("tiny_llama")()
    cfg.model = StableLMProvider(num_layers=4, hidden_size=128, num_attention_heads=4, ffn_hidden_size=352,
                                 add_qkv_bias=True, vocab_size=None, seq_length=cfg.model.seq_length,
                                 hidden_dropout=0.0, attention_dropout=0.0, init_method_std=0.02,
                                 use_cpu_initialization=True, transformer_impl="local", make_vocab_size_divisible_by=64)
    return cfg
