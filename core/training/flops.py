"""Model FLOPs of one training iteration, for the train state's ``floating_point_operations_so_far``
(and throughput reports). Counted like Megatron-LM: matmuls only, 2 FLOPs per multiply-add,
backward = 2 x forward, causal attention counted in full."""

from __future__ import annotations

from typing import Optional, Tuple


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


# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from NVIDIA's data sheets. Matched against
# torch.cuda.get_device_name() in order: the first key contained in the name wins, so the more
# specific names (H100 PCIe / NVL) come before the plain "H100" (SXM).
PEAK_BF16: Tuple[Tuple[str, float], ...] = (
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 PCIE", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM5 (e.g. "NVIDIA H100 80GB HBM3")
    ("B200", 2250.0),
    ("A100", 312.0),
)


def peak_bf16_tflops(device_name: str) -> Optional[float]:
    """The dense bf16 peak for ``device_name`` (as torch reports it), or None when not in the table."""
    name = device_name.upper()
    for key, peak in PEAK_BF16:
        if key in name:
            return peak
    return None


def mfu(model_flops_per_step: float, step_time_s: float, peak_tflops: float) -> float:
    """Achieved model FLOP/s over the peak, as a fraction (0.45 = 45 %)."""
    return model_flops_per_step / step_time_s / (peak_tflops * 1e12)
