"""Model FLOPs of one training iteration, for the train state's ``floating_point_operations_so_far``
(and throughput reports). Counted like Megatron-LM: matmuls only, 2 FLOPs per multiply-add,
backward = 2 x forward, causal attention counted in full."""

from __future__ import annotations


def num_floating_point_operations(cfg) -> float:
    m, t = cfg.model, cfg.train
    h, s, layers = m.hidden_size, m.seq_length, m.num_layers
    heads = m.num_attention_heads
    kv_channels = m.kv_channels or h // heads
    query_groups = m.num_query_groups or heads
    ffn = m.ffn_hidden_size or 4 * h
    gated = 2 if m.gated_linear_unit else 1
    experts_per_token = m.moe_router_topk if m.num_moe_experts else 1
    vocab = m.padded_vocab_size(m.vocab_size) if m.vocab_size else 0

    per_token_layer = (
        2 * h * kv_channels * (heads + 2 * query_groups)  # QKV projection
        + 2 * 2 * s * kv_channels * heads                  # scores and weighted values
        + 2 * kv_channels * heads * h                      # output projection
        + 2 * h * ffn * (gated + 1) * experts_per_token    # MLP (fc1 [gate+up], fc2)
    )
    per_token = layers * per_token_layer + 2 * h * vocab   # + logits
    return 3.0 * per_token * s * t.global_batch_size       # forward + backward (2x)
